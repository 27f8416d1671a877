import { useQuery, useQueryClient } from '@tanstack/react-query';
import { useId, useState, type FormEvent } from 'react';
import { Link, useNavigate, useParams } from 'react-router';
import { api } from '../api';
import { asAppError } from '../api/errors';
import type { AdminUser } from '../api/types';
import { useAuth } from '../auth/store';
import { SafeName } from '../components/SafeName';
import { Alert, Button, Dialog, Spinner, TextField } from '../components/ui';
import { formatBytes, formatDate } from '../files/format';
import { NotFoundContent } from '../pages/NotFound';
import { Section } from '../settings/common';
import { AdminFrame, adminError } from './common';
import { SIZE_UNITS, parseSize, splitSize, type SizeUnit } from './size';
import { UserState } from './UsersPage';

const FIELD =
  'rounded-md border px-3 py-2 text-base focus-visible:outline-2 focus-visible:outline-blue-700 border-slate-400 bg-white';

function useRefresh(userId: string) {
  const queryClient = useQueryClient();
  return async (user?: AdminUser) => {
    // The answer lacks the session count: keep the one shown until the refetch below brings the new one.
    if (user) {
      queryClient.setQueryData<AdminUser>(['admin', 'user', userId], (old) => ({
        ...user,
        activeSessions: old?.activeSessions,
      }));
    }
    await queryClient.invalidateQueries({ queryKey: ['admin'] });
  };
}

function RoleSection({ user }: { user: AdminUser }) {
  const refresh = useRefresh(user.id);
  const me = useAuth((s) => s.me);
  const id = useId();
  const [admin, setAdmin] = useState(user.admin);
  const [error, setError] = useState<string>();
  const [done, setDone] = useState<string>();
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    setDone(undefined);
    try {
      const u = await api.setUserAdmin(user.id, admin);
      await refresh(u);
      setDone(u.admin ? 'Now an administrator.' : 'Now a regular user.');
    } catch (err) {
      setError(adminError(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <Section title="Role" testId="admin-role">
      <p className="text-sm text-slate-800">
        A user has their own files and what others share with them. An administrator also manages every account here.
      </p>
      <form onSubmit={submit} className="flex flex-wrap items-end gap-3" noValidate>
        <div className="flex flex-col gap-1">
          <label htmlFor={id} className="text-sm font-medium text-slate-800">
            Role
          </label>
          <select
            id={id}
            value={admin ? 'admin' : 'user'}
            onChange={(e) => setAdmin(e.target.value === 'admin')}
            aria-invalid={error ? true : undefined}
            aria-describedby={error ? `${id}-error` : undefined}
            className={FIELD}
          >
            <option value="user">User</option>
            <option value="admin">Administrator</option>
          </select>
        </div>
        <Button type="submit" variant="primary" disabled={busy || admin === user.admin}>
          Save role
        </Button>
      </form>
      {error && (
        <p id={`${id}-error`} role="alert" className="text-sm text-red-800">
          {error}
        </p>
      )}
      {done && <Alert kind="success">{done}</Alert>}
      {me?.id === user.id && <p className="text-sm text-slate-700">This is your own account.</p>}
    </Section>
  );
}

function AccessSection({ user }: { user: AdminUser }) {
  const refresh = useRefresh(user.id);
  const [confirm, setConfirm] = useState(false);
  const [error, setError] = useState<string>();
  const [done, setDone] = useState<string>();
  const [busy, setBusy] = useState(false);
  const apply = async (disabled: boolean) => {
    setBusy(true);
    setError(undefined);
    setDone(undefined);
    try {
      const u = await api.setUserDisabled(user.id, disabled);
      await refresh(u);
      setDone(u.disabled ? 'Disabled: their sessions have ended and they cannot log in.' : 'Enabled: they can log in again.');
      setConfirm(false);
    } catch (err) {
      setError(adminError(err));
      setConfirm(false);
    } finally {
      setBusy(false);
    }
  };
  return (
    <Section title="Access" testId="admin-access">
      <p className="text-sm text-slate-800">
        {user.disabled
          ? 'This account is disabled: it cannot log in, and its files and shares are kept.'
          : 'Disabling ends every open session of this account at once and stops it logging in. Files and shares are kept.'}
      </p>
      <div>
        {user.disabled ? (
          <Button variant="primary" disabled={busy} onClick={() => void apply(false)}>
            Enable account
          </Button>
        ) : (
          <Button variant="danger" disabled={busy} onClick={() => setConfirm(true)}>
            Disable account
          </Button>
        )}
      </div>
      {error && <Alert>{error}</Alert>}
      {done && <Alert kind="success">{done}</Alert>}
      <Dialog open={confirm} title="Disable this account?" onClose={() => setConfirm(false)}>
        <p className="text-sm text-slate-800">
          {user.email} is logged out everywhere at once and cannot log in until enabled again.
        </p>
        <div className="flex justify-end gap-2">
          <Button onClick={() => setConfirm(false)}>Cancel</Button>
          <Button variant="danger" disabled={busy} onClick={() => void apply(true)}>
            Disable
          </Button>
        </div>
      </Dialog>
    </Section>
  );
}

function QuotaSection({ user }: { user: AdminUser }) {
  const queryClient = useQueryClient();
  const quota = useQuery({ queryKey: ['admin', 'quota', user.id], queryFn: () => api.userQuota(user.id), retry: false });
  const amountId = useId();
  const unitId = useId();
  const [edit, setEdit] = useState<{ amount: string; unit: SizeUnit }>();
  const [fieldError, setFieldError] = useState<string>();
  const [error, setError] = useState<string>();
  const [done, setDone] = useState<string>();
  const [busy, setBusy] = useState(false);
  const form = edit ?? (quota.data ? splitSize(quota.data.limit) : { amount: '', unit: 'GiB' as SizeUnit });

  const save = async (limit: number) => {
    setBusy(true);
    setError(undefined);
    setDone(undefined);
    try {
      const q = await api.setUserQuota(user.id, limit);
      queryClient.setQueryData(['admin', 'quota', user.id], q);
      setEdit(undefined);
      setDone(`Limit set to ${formatBytes(q.limit)}${limit === 0 ? ' (the default)' : ''}.`);
    } catch (err) {
      const e = asAppError(err);
      if (e.field === 'limit_bytes') setFieldError(adminError(err));
      else setError(adminError(err));
    } finally {
      setBusy(false);
    }
  };
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const parsed = parseSize(form.amount, form.unit);
    if (!parsed.ok) {
      setFieldError(parsed.error);
      return;
    }
    setFieldError(undefined);
    void save(parsed.bytes);
  };

  return (
    <Section title="Storage" testId="admin-quota">
      {quota.isPending ? (
        <Spinner label="Loading storage use…" />
      ) : quota.isError ? (
        <Alert>{adminError(quota.error)}</Alert>
      ) : (
        <p className="text-sm text-slate-800" data-testid="admin-usage">
          Uses {formatBytes(quota.data.used)} (trash and old versions included)
          {quota.data.reserved > 0 ? `, plus ${formatBytes(quota.data.reserved)} held by uploads` : ''}, of a limit of{' '}
          <strong data-testid="admin-limit" data-bytes={quota.data.limit}>
            {formatBytes(quota.data.limit)}
          </strong>
          .
        </p>
      )}
      <form onSubmit={submit} className="flex flex-col gap-2" noValidate>
        <div className="flex flex-wrap items-end gap-2">
          <div className="flex flex-col gap-1">
            <label htmlFor={amountId} className="text-sm font-medium text-slate-800">
              Storage limit
            </label>
            <input
              id={amountId}
              inputMode="decimal"
              value={form.amount}
              onChange={(e) => {
                setEdit({ ...form, amount: e.target.value });
                setFieldError(undefined);
              }}
              aria-invalid={fieldError ? true : undefined}
              aria-describedby={fieldError ? `${amountId}-error` : undefined}
              className={`w-32 ${FIELD} ${fieldError ? 'border-red-700' : ''}`}
            />
          </div>
          <div className="flex flex-col gap-1">
            <label htmlFor={unitId} className="text-sm font-medium text-slate-800">
              Unit
            </label>
            <select
              id={unitId}
              value={form.unit}
              onChange={(e) => {
                setEdit({ ...form, unit: e.target.value as SizeUnit });
                setFieldError(undefined);
              }}
              className={FIELD}
            >
              {SIZE_UNITS.map((u) => (
                <option key={u} value={u}>
                  {u}
                </option>
              ))}
            </select>
          </div>
          <Button type="submit" variant="primary" disabled={busy}>
            Set limit
          </Button>
          <Button disabled={busy} onClick={() => void save(0)}>
            Use the default limit
          </Button>
        </div>
        {fieldError && (
          <p id={`${amountId}-error`} role="alert" className="text-sm text-red-800">
            {fieldError}
          </p>
        )}
      </form>
      {error && <Alert>{error}</Alert>}
      {done && <Alert kind="success">{done}</Alert>}
    </Section>
  );
}

function DeleteSection({ user }: { user: AdminUser }) {
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const [open, setOpen] = useState(false);
  const [typed, setTyped] = useState('');
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  const matches = typed.trim().toLowerCase() === user.email.toLowerCase();
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (!matches) {
      setError('Type the account’s email address exactly to confirm.');
      return;
    }
    setBusy(true);
    setError(undefined);
    try {
      const freed = await api.deleteUser(user.id);
      queryClient.removeQueries({ queryKey: ['admin', 'user', user.id] });
      await queryClient.invalidateQueries({ queryKey: ['admin'] });
      void navigate('/admin', { state: { notice: `Deleted ${user.email} and ${formatBytes(freed)} of files.` } });
    } catch (err) {
      setError(adminError(err));
      setBusy(false);
    }
  };
  return (
    <Section title="Delete account" testId="admin-delete">
      <p className="text-sm text-slate-800">
        Deletes the account, every file, version and trash entry it owns, and its shares and links. This cannot be undone.
      </p>
      <div>
        <Button variant="danger" onClick={() => setOpen(true)}>
          Delete account…
        </Button>
      </div>
      <Dialog
        open={open}
        title="Delete this account for good?"
        onClose={() => {
          setOpen(false);
          setTyped('');
          setError(undefined);
        }}
      >
        <form onSubmit={submit} className="flex flex-col gap-4" noValidate>
          <p className="text-sm text-slate-800">
            Type <strong className="break-all">{user.email}</strong> to confirm.
          </p>
          <TextField
            label="Email of the account to delete"
            autoComplete="off"
            autoFocus
            value={typed}
            onChange={(e) => {
              setTyped(e.target.value);
              setError(undefined);
            }}
            error={error}
          />
          <div className="flex justify-end gap-2">
            <Button onClick={() => setOpen(false)}>Cancel</Button>
            {/* Enabled even before the email matches: Enter and a click say what is missing, at the field. */}
            <Button type="submit" variant="danger" disabled={busy}>
              Delete for good
            </Button>
          </div>
        </form>
      </Dialog>
    </Section>
  );
}

function UserView({ userId }: { userId: string }) {
  const user = useQuery({ queryKey: ['admin', 'user', userId], queryFn: () => api.getUser(userId), retry: false });
  if (user.isPending) return <Spinner label="Loading the account…" />;
  if (user.isError) {
    if (asAppError(user.error).kind === 'not_found') return <NotFoundContent />;
    return <Alert>{adminError(user.error)}</Alert>;
  }
  const u = user.data;
  return (
    <>
      <Section title={u.email} testId="admin-user">
        <dl className="grid grid-cols-[max-content_1fr] gap-x-4 gap-y-1 text-sm">
          <dt className="text-slate-700">Name</dt>
          <dd>{u.displayName ? <SafeName name={u.displayName} /> : '—'}</dd>
          <dt className="text-slate-700">Role</dt>
          <dd data-testid="admin-user-role">{u.admin ? 'Administrator' : 'User'}</dd>
          <dt className="text-slate-700">State</dt>
          <dd data-testid="admin-user-state">
            <UserState user={u} />
          </dd>
          <dt className="text-slate-700">Two-factor</dt>
          <dd>{u.totpEnabled ? 'On' : 'Off'}</dd>
          <dt className="text-slate-700">Created</dt>
          <dd>{formatDate(u.created)}</dd>
          {u.activeSessions !== undefined && (
            <>
              <dt className="text-slate-700">Sessions</dt>
              <dd data-testid="admin-user-sessions">{u.activeSessions === 0 ? 'Not logged in anywhere' : `${u.activeSessions} in use`}</dd>
            </>
          )}
        </dl>
        <Link to={`/admin/activity?user=${encodeURIComponent(u.id)}`} className="text-sm">
          Activity of this account
        </Link>
      </Section>
      <RoleSection key={`role-${String(u.admin)}`} user={u} />
      <AccessSection user={u} />
      <QuotaSection user={u} />
      <DeleteSection user={u} />
    </>
  );
}

/** One account: role, state, storage and limit; change the role, disable or enable, set the limit, delete. */
export default function UserPage() {
  const { userId = '' } = useParams();
  return (
    <AdminFrame title="Account">
      <Link to="/admin" className="text-sm">
        ← All accounts
      </Link>
      <UserView userId={userId} />
    </AdminFrame>
  );
}
