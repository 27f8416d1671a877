import { NavLink } from 'react-router';
import { Link } from 'react-router';

/** The two views of sharing, as tabs (links: each view has its own address). */
export function SharedTabs() {
  const tab = ({ isActive }: { isActive: boolean }) =>
    `rounded-md px-3 py-2 text-sm font-medium no-underline hover:no-underline ${isActive ? 'bg-blue-100 text-blue-900' : 'text-slate-800 hover:bg-slate-100'}`;
  return (
    <nav aria-label="Sharing views" className="flex flex-wrap gap-2">
      <NavLink to="/shared" end className={tab}>
        Shared with me
      </NavLink>
      <NavLink to="/shared/by-me" className={tab}>
        Shared by me
      </NavLink>
    </nav>
  );
}

/** What a grantee sees once the owner revoked the share (or deleted the item): no broken page. */
export function NoLongerShared() {
  return (
    <div className="flex flex-col gap-3 p-4" data-testid="no-longer-shared">
      <h1 className="text-xl font-semibold outline-none">No longer shared</h1>
      <p className="text-slate-800">
        This is no longer shared with you: the owner ended the share, or moved or deleted the item.
      </p>
      <Link to="/shared">Go to Shared with me</Link>
    </div>
  );
}

/** A call about a shared item that answers "not found" or "not allowed" means the share is gone. */
export function isGone(error: unknown): boolean {
  const kind = (error as { kind?: string } | undefined)?.kind;
  return kind === 'not_found' || kind === 'permission';
}
