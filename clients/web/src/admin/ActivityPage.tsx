import { useQuery } from '@tanstack/react-query';
import { useId, useState, type FormEvent } from 'react';
import { Link, useSearchParams } from 'react-router';
import { api } from '../api';
import type { ActivityEntry, ActivityQuery } from '../api/types';
import { ActivityList } from '../components/ActivityList';
import { Button, TextField } from '../components/ui';
import { describeKind, KIND_PREFIXES } from '../dashboard/kinds';
import { AdminFrame, adminError } from './common';
import { parseRange } from './filters';

const FIELD =
  'rounded-md border border-slate-400 bg-white px-3 py-2 text-base focus-visible:outline-2 focus-visible:outline-blue-700';

/** An account id as its email (cached per id); a deleted account stays an id. */
function Who({ id }: { id: string }) {
  const user = useQuery({ queryKey: ['admin', 'user', id], queryFn: () => api.getUser(id), enabled: Boolean(id), retry: false, staleTime: 60_000 });
  if (!id) return <>someone not logged in</>;
  if (user.data) return <Link to={`/admin/users/${id}`}>{user.data.email}</Link>;
  return <span className="break-all">{id}</span>;
}

/** Who did it, and whose account it concerns when that is someone else. */
function Parties({ entry }: { entry: ActivityEntry }) {
  return (
    <>
      {' '}
      · by <Who id={entry.actorId} />
      {entry.subjectId && entry.subjectId !== entry.actorId ? (
        <>
          {' '}
          · about <Who id={entry.subjectId} />
        </>
      ) : null}
    </>
  );
}

/** The kind in words, then as the server names it (what the Kind filter matches). */
function KindTitle({ kind }: { kind: string }) {
  return (
    <>
      {describeKind(kind)} <span className="text-sm font-normal text-slate-700">({kind})</span>
    </>
  );
}

/** Everyone's activity: filtered by account, kind and dates on the server, newest first, a page at a time. */
export default function ActivityPage() {
  const [params, setParams] = useSearchParams();
  const userId = params.get('user') ?? '';
  const kind = params.get('kind') ?? '';
  const from = params.get('from') ?? '';
  const to = params.get('to') ?? '';
  const chosen = useQuery({ queryKey: ['admin', 'user', userId], queryFn: () => api.getUser(userId), enabled: Boolean(userId), retry: false });
  const [email, setEmail] = useState<string>();
  const [draft, setDraft] = useState({ kind, from, to });
  const [errors, setErrors] = useState<{ user?: string; from?: string; to?: string }>({});
  const [busy, setBusy] = useState(false);
  const kindId = useId();
  const fromId = useId();
  const toId = useId();
  const shownEmail = email ?? chosen.data?.email ?? '';

  const range = parseRange(from, to);
  const query: ActivityQuery = {
    subjectId: userId || undefined,
    kindPrefix: kind || undefined,
    ...(range.ok ? range.range : {}),
  };

  const apply = async (e: FormEvent) => {
    e.preventDefault();
    const next: typeof errors = {};
    const parsed = parseRange(draft.from, draft.to);
    if (!parsed.ok) next[parsed.field] = parsed.error;
    let id = '';
    const wanted = shownEmail.trim().toLowerCase();
    if (wanted) {
      setBusy(true);
      try {
        const found = await api.listUsers(wanted);
        id = found.items.find((u) => u.email.toLowerCase() === wanted)?.id ?? '';
        if (!id) next.user = 'No account uses this email address.';
      } catch (err) {
        next.user = adminError(err);
      } finally {
        setBusy(false);
      }
    }
    setErrors(next);
    if (Object.keys(next).length) return;
    const p = new URLSearchParams();
    if (id) p.set('user', id);
    if (draft.kind) p.set('kind', draft.kind);
    if (draft.from) p.set('from', draft.from);
    if (draft.to) p.set('to', draft.to);
    setParams(p);
  };

  return (
    <AdminFrame title="Activity">
      <form onSubmit={apply} className="flex flex-col gap-3 rounded-lg border border-slate-200 bg-white p-4" noValidate>
        <div className="grid grid-cols-1 gap-3 sm:grid-cols-2">
          <TextField
            label="Account (email)"
            type="email"
            autoComplete="off"
            value={shownEmail}
            onChange={(e) => setEmail(e.target.value)}
            error={errors.user}
            hint="Empty: every account."
          />
          <div className="flex flex-col gap-1">
            <label htmlFor={kindId} className="text-sm font-medium text-slate-800">
              Kind
            </label>
            <select id={kindId} value={draft.kind} onChange={(e) => setDraft({ ...draft, kind: e.target.value })} className={FIELD}>
              {KIND_PREFIXES.map((k) => (
                <option key={k.prefix} value={k.prefix}>
                  {k.label}
                </option>
              ))}
            </select>
          </div>
          <div className="flex flex-col gap-1">
            <label htmlFor={fromId} className="text-sm font-medium text-slate-800">
              From date
            </label>
            <input
              id={fromId}
              type="date"
              value={draft.from}
              onChange={(e) => setDraft({ ...draft, from: e.target.value })}
              aria-invalid={errors.from ? true : undefined}
              aria-describedby={errors.from ? `${fromId}-error` : undefined}
              className={FIELD}
            />
            {errors.from && (
              <p id={`${fromId}-error`} role="alert" className="text-sm text-red-800">
                {errors.from}
              </p>
            )}
          </div>
          <div className="flex flex-col gap-1">
            <label htmlFor={toId} className="text-sm font-medium text-slate-800">
              To date (included)
            </label>
            <input
              id={toId}
              type="date"
              value={draft.to}
              onChange={(e) => setDraft({ ...draft, to: e.target.value })}
              aria-invalid={errors.to ? true : undefined}
              aria-describedby={errors.to ? `${toId}-error` : undefined}
              className={FIELD}
            />
            {errors.to && (
              <p id={`${toId}-error`} role="alert" className="text-sm text-red-800">
                {errors.to}
              </p>
            )}
          </div>
        </div>
        <div className="flex gap-2">
          <Button type="submit" variant="primary" disabled={busy}>
            Show
          </Button>
          <Button
            onClick={() => {
              setEmail('');
              setDraft({ kind: '', from: '', to: '' });
              setErrors({});
              setParams(new URLSearchParams());
            }}
          >
            Clear filters
          </Button>
        </div>
      </form>
      <ActivityList
        queryKey={['admin', 'activity', userId, kind, from, to]}
        fetchPage={(pageToken) => api.activity(query, pageToken)}
        retry={false}
        title={(e) => <KindTitle kind={e.kind} />}
        parties={(e) => <Parties entry={e} />}
        rowTestId="admin-activity-row"
        empty="Nothing matches these filters."
        describeFailure={adminError}
        framed
      />
    </AdminFrame>
  );
}
