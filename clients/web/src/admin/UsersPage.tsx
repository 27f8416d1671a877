import { keepPreviousData, useQuery } from '@tanstack/react-query';
import { useId, useState, type FormEvent } from 'react';
import { Link, useLocation, useSearchParams } from 'react-router';
import { api } from '../api';
import type { AdminUser } from '../api/types';
import { SafeName } from '../components/SafeName';
import { Alert, Button, Spinner } from '../components/ui';
import { formatDate } from '../files/format';
import { AdminFrame, adminError } from './common';

/** A label that stays one line and one height, so a row of them lines up at any width. */
function Badge({ tone, children }: { tone: string; children: string }) {
  return <span className={`inline-flex items-center rounded px-2 py-0.5 text-sm leading-5 whitespace-nowrap ${tone}`}>{children}</span>;
}

export function UserState({ user }: { user: AdminUser }) {
  if (user.disabled) return <Badge tone="bg-red-100 text-red-900">Disabled</Badge>;
  if (!user.emailVerified) return <Badge tone="bg-amber-100 text-amber-900">Email not confirmed</Badge>;
  return <Badge tone="bg-green-100 text-green-900">Active</Badge>;
}

/** Accounts, searched by email or name, a page at a time (the server's page tokens; Previous keeps the ones seen). */
export default function UsersPage() {
  const [params, setParams] = useSearchParams();
  const location = useLocation();
  const query = params.get('q') ?? '';
  const [text, setText] = useState(query);
  // tokens[i] opens page i; page 0 is ''.
  const [tokens, setTokens] = useState<string[]>(['']);
  const [pageIndex, setPageIndex] = useState(0);
  const searchId = useId();
  const users = useQuery({
    queryKey: ['admin', 'users', query, tokens[pageIndex]],
    queryFn: () => api.listUsers(query, tokens[pageIndex]),
    placeholderData: keepPreviousData,
    retry: false,
  });
  const notice = (location.state as { notice?: string } | null)?.notice;

  const search = (e: FormEvent) => {
    e.preventDefault();
    setTokens(['']);
    setPageIndex(0);
    const next = new URLSearchParams(params);
    if (text.trim()) next.set('q', text.trim());
    else next.delete('q');
    setParams(next, { replace: true });
  };
  const next = () => {
    const token = users.data?.nextPageToken;
    if (!token) return;
    setTokens((t) => [...t.slice(0, pageIndex + 1), token]);
    setPageIndex((i) => i + 1);
  };

  return (
    <AdminFrame title="Administration">
      {notice && <Alert kind="success">{notice}</Alert>}
      <form role="search" onSubmit={search} className="flex flex-wrap items-end gap-2">
        <div className="flex min-w-0 flex-1 flex-col gap-1">
          <label htmlFor={searchId} className="text-sm font-medium text-slate-800">
            Search accounts by email or name
          </label>
          <input
            id={searchId}
            type="search"
            value={text}
            onChange={(e) => setText(e.target.value)}
            className="rounded-md border border-slate-400 px-3 py-2 text-base focus-visible:outline-2 focus-visible:outline-blue-700"
          />
        </div>
        <Button type="submit" variant="primary">
          Search
        </Button>
      </form>
      {users.isPending ? (
        <Spinner label="Loading accounts…" />
      ) : users.isError ? (
        <Alert>{adminError(users.error)}</Alert>
      ) : users.data.items.length === 0 ? (
        <p className="text-slate-700">{query ? `No account matches “${query}”.` : 'No accounts.'}</p>
      ) : (
        <ul aria-label="Accounts" className="flex flex-col rounded-lg border border-slate-200 bg-white">
          {users.data.items.map((u) => (
            <li
              key={u.id}
              data-testid="user-row"
              data-email={u.email}
              // Phone: email, name, then the badges on a line of their own from the left edge; wider: one line with
              // the badges at the right.
              className="flex flex-col items-start gap-1 border-b border-slate-200 px-3 py-2 last:border-b-0 sm:flex-row sm:flex-wrap sm:items-center sm:gap-x-3"
            >
              <Link to={`/admin/users/${u.id}`} className="max-w-full min-w-0 font-medium break-all">
                {u.email}
              </Link>
              {u.displayName && (
                <span className="max-w-full text-sm break-words text-slate-700">
                  <SafeName name={u.displayName} />
                </span>
              )}
              <span data-testid="user-badges" className="flex flex-wrap items-center gap-2 text-sm text-slate-700 sm:ml-auto">
                {u.admin && <Badge tone="bg-blue-100 text-blue-900">Administrator</Badge>}
                <UserState user={u} />
                <span className="leading-5 whitespace-nowrap">Since {formatDate(u.created)}</span>
              </span>
            </li>
          ))}
        </ul>
      )}
      <div className="flex items-center gap-2">
        <Button disabled={pageIndex === 0} onClick={() => setPageIndex((i) => Math.max(0, i - 1))}>
          Previous page
        </Button>
        <span className="text-sm text-slate-700" aria-live="polite">
          Page {pageIndex + 1}
        </span>
        <Button disabled={!users.data?.nextPageToken || users.isFetching} onClick={next}>
          Next page
        </Button>
      </div>
    </AdminFrame>
  );
}
