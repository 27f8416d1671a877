import { useQuery, useQueryClient } from '@tanstack/react-query';
import { useEffect, useRef, useState, type FormEvent, type ReactNode } from 'react';
import { Link, NavLink, Navigate, Outlet, useLocation, useNavigate } from 'react-router';
import { api } from '../api';
import { formatBytes } from '../upload/queue';
import { useAuth } from '../auth/store';
import { UploadPanel } from '../upload/UploadPanel';
import { uploads } from '../upload/store';
import { Spinner } from './ui';

function Logo() {
  return (
    <Link to="/" className="flex items-center gap-2 text-lg font-bold text-slate-900 no-underline hover:no-underline">
      <img src="/favicon.svg" alt="" width={28} height={28} />
      FlowDock
    </Link>
  );
}

/** Boots the session once and sends the person to Log in (with a return URL) when a refresh is refused. */
export function Root() {
  const boot = useAuth((s) => s.boot);
  const sessionExpired = useAuth((s) => s.sessionExpired);
  const navigate = useNavigate();
  const location = useLocation();
  const queryClient = useQueryClient();
  const here = useRef(location);
  useEffect(() => {
    here.current = location;
  }, [location]);
  useEffect(() => {
    void boot();
    api.onSessionExpired(() => {
      sessionExpired();
      uploads.cancelAll();
      queryClient.clear();
      const next = here.current.pathname + here.current.search;
      void navigate(`/login?next=${encodeURIComponent(next)}&expired=1`);
    });
  }, [boot, sessionExpired, navigate, queryClient]);
  useEffect(() => {
    // Move focus to the new page's heading for keyboard and screen-reader users.
    const heading = document.querySelector('main h1');
    if (heading instanceof HTMLElement) {
      heading.tabIndex = -1;
      heading.focus({ preventScroll: true });
    }
  }, [location.pathname]);
  return <Outlet />;
}

/** Help, Terms and Privacy: in every page's footer or navigation, and the account menu. */
export function InfoLinks({ className = '' }: { className?: string }) {
  return (
    <ul aria-label="About FlowDock" className={`flex flex-wrap gap-x-4 gap-y-1 text-sm ${className}`}>
      <li>
        <Link to="/help">Help</Link>
      </li>
      <li>
        <Link to="/terms">Terms</Link>
      </li>
      <li>
        <Link to="/privacy">Privacy</Link>
      </li>
    </ul>
  );
}

/** Public pages with room for a file list (the public link page). */
export function WidePublicLayout() {
  return <PublicLayout wide />;
}

export function PublicLayout({ wide = false }: { wide?: boolean }) {
  const status = useAuth((s) => s.status);
  const loggingOut = useAuth((s) => s.loggingOut);
  return (
    <div className="flex min-h-full flex-col">
      <header className="flex items-center justify-between gap-3 border-b border-slate-200 bg-white px-4 py-3">
        <Logo />
        <nav aria-label="Account" className="flex items-center gap-3 text-sm">
          {loggingOut ? null : status === 'signed-in' ? ( // a session being ended offers no way back into it
            <Link to="/files">My files</Link>
          ) : (
            <>
              <Link to="/login">Log in</Link>
              <Link to="/signup" className="rounded-md bg-blue-700 px-3 py-2 text-white hover:bg-blue-800">
                Sign up
              </Link>
            </>
          )}
        </nav>
      </header>
      <main className="flex flex-1 justify-center px-4 py-8">
        <div className={`w-full ${wide ? 'max-w-3xl' : 'max-w-md'}`}>
          <Outlet />
        </div>
      </main>
      <footer className="flex justify-center border-t border-slate-200 bg-white px-4 py-3">
        <InfoLinks />
      </footer>
    </div>
  );
}

export function RequireAuth() {
  const status = useAuth((s) => s.status);
  const location = useLocation();
  if (status === 'checking') return <Spinner label="Signing you in…" />;
  if (status === 'anonymous') {
    return <Navigate to={`/login?next=${encodeURIComponent(location.pathname + location.search)}`} replace />;
  }
  return <Outlet />;
}

function UserMenu() {
  const me = useAuth((s) => s.me);
  const logout = useAuth((s) => s.logout);
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const [open, setOpen] = useState(false);
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!open) return;
    const onKey = (e: KeyboardEvent) => e.key === 'Escape' && setOpen(false);
    const onClick = (e: MouseEvent) => {
      if (ref.current && !ref.current.contains(e.target as Node)) setOpen(false);
    };
    document.addEventListener('keydown', onKey);
    document.addEventListener('mousedown', onClick);
    return () => {
      document.removeEventListener('keydown', onKey);
      document.removeEventListener('mousedown', onClick);
    };
  }, [open]);
  const name = me?.displayName || me?.email || 'Account';
  return (
    <div ref={ref} className="relative">
      <button
        type="button"
        aria-haspopup="true"
        aria-expanded={open}
        onClick={() => setOpen((o) => !o)}
        className="flex h-9 w-9 items-center justify-center rounded-full bg-blue-700 font-semibold text-white focus-visible:outline-2 focus-visible:outline-offset-2 focus-visible:outline-blue-700"
      >
        <span aria-hidden>{name.charAt(0).toUpperCase()}</span>
        <span className="sr-only">Account menu for {name}</span>
      </button>
      {open && (
        <div className="absolute right-0 z-30 mt-2 w-64 rounded-md border border-slate-200 bg-white p-2 shadow-lg">
          <p className="truncate px-2 py-1 text-sm text-slate-700">Signed in as {me?.email}</p>
          <Link
            to="/settings"
            onClick={() => setOpen(false)}
            className="block w-full rounded px-2 py-2 text-left text-sm text-slate-800 no-underline hover:bg-slate-100 hover:no-underline focus-visible:outline-2 focus-visible:outline-blue-700"
          >
            Settings
          </Link>
          <Link
            to="/help"
            onClick={() => setOpen(false)}
            className="block w-full rounded px-2 py-2 text-left text-sm text-slate-800 no-underline hover:bg-slate-100 hover:no-underline focus-visible:outline-2 focus-visible:outline-blue-700"
          >
            Help
          </Link>
          <button
            type="button"
            className="w-full rounded px-2 py-2 text-left text-sm hover:bg-slate-100 focus-visible:outline-2 focus-visible:outline-blue-700"
            onClick={async () => {
              uploads.cancelAll();
              // Leave the signed-in pages first: ending the session under them would also send this tab to
              // /login?next=… (RequireAuth), a second navigation racing whatever is typed into the first. The
              // store counts the logout as in flight from now on, so Log in waits for it to end.
              await logout(() => navigate('/login'));
              queryClient.clear();
            }}
          >
            Log out
          </button>
        </div>
      )}
    </div>
  );
}

function HeaderSearch() {
  const navigate = useNavigate();
  const location = useLocation();
  const current = location.pathname === '/search' ? (new URLSearchParams(location.search).get('q') ?? '') : '';
  const [q, setQ] = useState(current);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (q.trim()) void navigate(`/search?q=${encodeURIComponent(q.trim())}`);
  };
  return (
    <form role="search" onSubmit={submit} className="min-w-0 flex-1">
      <label htmlFor="header-search" className="sr-only">
        Search files by name
      </label>
      <input
        id="header-search"
        type="search"
        value={q}
        onChange={(e) => setQ(e.target.value)}
        placeholder="Search files"
        className="w-full max-w-xl rounded-md border border-slate-400 px-3 py-2 text-base focus-visible:outline-2 focus-visible:outline-blue-700"
      />
    </form>
  );
}

/** One part of the quota's breakdown, kept whole: the line breaks between parts, never inside "0 B". */
function Part({ children }: { children: ReactNode }) {
  return (
    <span className="whitespace-nowrap" data-testid="quota-part">
      {children}
    </span>
  );
}

export function QuotaBar() {
  const { data, isError } = useQuery({ queryKey: ['quota'], queryFn: () => api.quota() });
  if (isError) return <p className="text-sm text-slate-700">Storage use unavailable</p>;
  if (!data) return <p className="text-sm text-slate-700">Loading storage use…</p>;
  const used = data.used + data.reserved;
  const percent = data.limit > 0 ? Math.min(100, Math.round((used / data.limit) * 100)) : 0;
  const summary = `${formatBytes(data.used)} of ${data.limit > 0 ? formatBytes(data.limit) : 'unlimited'} used`;
  return (
    <div className="flex min-w-0 flex-col gap-1 text-sm text-slate-800" data-testid="quota">
      <div
        role="progressbar"
        aria-label="Storage used"
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={percent}
        className="h-2 overflow-hidden rounded bg-slate-200"
      >
        {/* Set through the CSSOM by React, which a CSP without 'unsafe-inline' allows. */}
        <div className={`h-full ${percent > 90 ? 'bg-red-700' : 'bg-blue-700'}`} style={{ width: `${percent}%` }} />
      </div>
      {/* One line at any width: cut with an ellipsis (the whole sentence on hover) rather than wrapped mid-amount. */}
      <p className="truncate" title={summary}>
        {summary}
      </p>
      <p className="text-xs text-slate-700">
        Includes <Part>trash {formatBytes(data.trash)}</Part> and <Part>old versions {formatBytes(data.versions)}</Part>
        {data.reserved > 0 ? (
          <>
            ; <Part>{formatBytes(data.reserved)} held by uploads</Part>
          </>
        ) : null}
      </p>
    </div>
  );
}

const NAV = [
  { to: '/dashboard', label: 'Dashboard' },
  { to: '/files', label: 'My files' },
  { to: '/shared', label: 'Shared' },
  { to: '/trash', label: 'Trash' },
  { to: '/admin', label: 'Admin', admin: true },
];

export function AppLayout() {
  const location = useLocation();
  const admin = useAuth((s) => s.me?.admin ?? false);
  // The phone menu closes by itself on navigation: it is open only for the page it was opened on.
  const [navOpenOn, setNavOpenOn] = useState<string>();
  const navOpen = navOpenOn === location.pathname;
  const setNavOpen = (toggle: (open: boolean) => boolean) =>
    setNavOpenOn(toggle(navOpen) ? location.pathname : undefined);
  return (
    <div className="flex h-full flex-col">
      <a
        href="#main"
        className="sr-only focus:not-sr-only focus:absolute focus:left-2 focus:top-2 focus:z-50 focus:bg-white focus:p-2"
      >
        Skip to content
      </a>
      <header className="flex items-center gap-3 border-b border-slate-200 bg-white px-3 py-2">
        <button
          type="button"
          className="rounded-md p-2 text-slate-800 hover:bg-slate-100 md:hidden"
          aria-expanded={navOpen}
          aria-controls="side-nav"
          onClick={() => setNavOpen((o) => !o)}
        >
          <span aria-hidden>☰</span>
          <span className="sr-only">Menu</span>
        </button>
        <div className="hidden sm:block">
          <Logo />
        </div>
        <HeaderSearch />
        <UserMenu />
      </header>
      <div className="flex min-h-0 flex-1">
        <nav
          id="side-nav"
          aria-label="Main"
          className={`${navOpen ? 'flex' : 'hidden'} absolute inset-x-0 top-14 z-20 flex-col gap-4 border-b border-slate-200 bg-white p-4 shadow md:static md:flex md:w-60 md:border-r md:border-b-0 md:shadow-none`}
        >
          <ul className="flex flex-col gap-1">
            {NAV.filter((item) => admin || !item.admin).map((item) => (
              <li key={item.to}>
                <NavLink
                  to={item.to}
                  className={({ isActive }) =>
                    `block rounded-md px-3 py-2 font-medium no-underline hover:no-underline ${isActive || location.pathname.startsWith(item.to + '/') ? 'bg-blue-100 text-blue-900' : 'text-slate-800 hover:bg-slate-100'}`
                  }
                >
                  {item.label}
                </NavLink>
              </li>
            ))}
          </ul>
          <QuotaBar />
          <InfoLinks className="mt-auto" />
        </nav>
        <main id="main" className="flex min-w-0 flex-1 flex-col">
          <Outlet />
        </main>
      </div>
      <UploadPanel />
    </div>
  );
}
