import type { ReactNode } from 'react';
import { NavLink } from 'react-router';
import { asAppError, describeError } from '../api/errors';
import { useAuth } from '../auth/store';
import { NotFoundContent } from '../pages/NotFound';

/**
 * Admin pages render only for administrators; anyone else gets the app's not-found page (no hint the page exists).
 * The server checks the role on every admin call anyway, against its database rather than the token.
 */
export function AdminOnly({ children }: { children: ReactNode }) {
  const admin = useAuth((s) => s.me?.admin ?? false);
  if (!admin) {
    return (
      <div className="p-4">
        <NotFoundContent />
      </div>
    );
  }
  return <>{children}</>;
}

/** The admin pages' frame: a title, the two tabs, the page. */
export function AdminFrame({ title, children }: { title: string; children: ReactNode }) {
  const tab = ({ isActive }: { isActive: boolean }) =>
    `rounded-md px-3 py-2 text-sm font-medium no-underline hover:no-underline ${isActive ? 'bg-blue-100 text-blue-900' : 'text-slate-800 hover:bg-slate-100'}`;
  return (
    <AdminOnly>
      <div className="flex min-h-0 flex-1 flex-col overflow-y-auto p-4">
        <div className="flex w-full max-w-4xl flex-col gap-4">
          <h1 className="text-xl font-semibold outline-none">{title}</h1>
          <nav aria-label="Administration" className="flex gap-2">
            <NavLink to="/admin" end className={tab}>
              Users
            </NavLink>
            <NavLink to="/admin/activity" className={tab}>
              Activity
            </NavLink>
          </nav>
          {children}
        </div>
      </div>
    </AdminOnly>
  );
}

/** Admin refusals in words: a refused role (PERMISSION_DENIED) says so plainly; the server's reasons otherwise. */
export function adminError(error: unknown): string {
  const e = asAppError(error);
  if (e.kind === 'permission') {
    return 'Permission denied: only administrators can do this, and this account is not one (any more).';
  }
  if ((e.kind === 'precondition' || e.kind === 'invalid' || e.kind === 'not_found') && e.message) {
    return e.message.charAt(0).toUpperCase() + e.message.slice(1);
  }
  return describeError(error);
}
