import { useQuery, useQueryClient } from '@tanstack/react-query';
import { useId, useState, type FormEvent } from 'react';
import { api } from '../api';
import { describeError, fieldError } from '../api/errors';
import type { FileNode, ShareGrant, ShareRole } from '../api/types';
import { SafeName } from '../components/SafeName';
import { Alert, Button, Dialog, Spinner, TextField } from '../components/ui';
import { ROLES, roleLabel } from './roles';

function RoleChoice({ value, onChange }: { value: ShareRole; onChange: (r: ShareRole) => void }) {
  const name = useId();
  return (
    <fieldset className="flex flex-col gap-2">
      <legend className="mb-1 text-sm font-medium text-slate-800">Role</legend>
      {ROLES.map((r) => (
        <label key={r.role} className="flex items-start gap-2 text-sm">
          <input
            type="radio"
            name={name}
            value={r.role}
            checked={value === r.role}
            onChange={() => onChange(r.role)}
            className="mt-1 h-4 w-4"
          />
          <span>
            <span className="font-medium">{r.label}</span>
            <span className="block text-slate-700">{r.explains}</span>
          </span>
        </label>
      ))}
    </fieldset>
  );
}

function GrantRow({
  grant,
  itemName,
  onChanged,
}: {
  grant: ShareGrant;
  itemName?: string;
  onChanged: () => Promise<void>;
}) {
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const act = async (work: () => Promise<unknown>) => {
    setBusy(true);
    setError(undefined);
    try {
      await work();
      await onChanged();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const selectId = useId();
  return (
    <li className="flex flex-col gap-2 py-2" data-testid="grant" data-email={grant.granteeEmail}>
      {itemName !== undefined && <SafeName name={itemName} className="text-xs text-slate-700" />}
      <div className="flex flex-wrap items-center justify-between gap-2">
        <span className="min-w-0 break-all text-sm font-medium">{grant.granteeEmail}</span>
        <div className="flex items-center gap-2">
          <label htmlFor={selectId} className="sr-only">
            Role of {grant.granteeEmail}
          </label>
          <select
            id={selectId}
            value={grant.role}
            disabled={busy}
            onChange={(e) => void act(() => api.changeShareRole(grant.id, e.target.value as ShareRole))}
            className="rounded-md border border-slate-400 px-2 py-1 text-sm"
          >
            {ROLES.map((r) => (
              <option key={r.role} value={r.role}>
                {r.label}
              </option>
            ))}
          </select>
          <Button variant="ghost" disabled={busy} onClick={() => void act(() => api.revokeShare(grant.id))}>
            Revoke<span className="sr-only"> access of {grant.granteeEmail}</span>
          </Button>
        </div>
      </div>
      {error ? <Alert>{describeError(error)}</Alert> : null}
    </li>
  );
}

/** Share one or many of my items with accounts by email and role; for one item, who has access and what role. */
export function ShareDialog({ nodes, onClose }: { nodes: FileNode[]; onClose: () => void }) {
  const queryClient = useQueryClient();
  const [email, setEmail] = useState('');
  const [role, setRole] = useState<ShareRole>('viewer');
  const [error, setError] = useState<unknown>();
  const [done, setDone] = useState<string>();
  const [busy, setBusy] = useState(false);
  const ids = new Set(nodes.map((n) => n.id));
  const grants = useQuery({ queryKey: ['outgoing-shares'], queryFn: () => api.outgoingShares() });
  const mine = (grants.data ?? []).filter((g) => ids.has(g.nodeId));
  const refresh = () => queryClient.invalidateQueries({ queryKey: ['outgoing-shares'] });

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    setDone(undefined);
    try {
      for (const n of nodes) await api.share(n.id, email.trim(), role);
      setDone(`Shared with ${email.trim()} as ${roleLabel(role).toLowerCase()}. They get a mail and see it under “Shared with me”.`);
      setEmail('');
      await refresh();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const emailError = fieldError(error, 'grantee_email');
  const title = nodes.length === 1 ? `Share “${nodes[0].name}”` : `Share ${nodes.length} items`;
  return (
    <Dialog open title={title} onClose={onClose}>
      <form onSubmit={submit} className="flex flex-col gap-4" noValidate>
        <TextField
          label="Email of the person"
          type="email"
          name="email"
          autoComplete="off"
          autoFocus
          value={email}
          onChange={(e) => setEmail(e.target.value)}
          error={emailError}
          hint="They need a FlowDock account on this server."
        />
        <RoleChoice value={role} onChange={setRole} />
        {error && !emailError ? <Alert>{describeError(error)}</Alert> : null}
        {done && <Alert kind="success">{done}</Alert>}
        <div className="flex justify-end gap-2">
          <Button onClick={onClose}>Close</Button>
          <Button type="submit" variant="primary" disabled={busy || !email.trim()}>
            Share
          </Button>
        </div>
      </form>
      <section aria-labelledby="who-has-access" className="flex flex-col gap-1 border-t border-slate-200 pt-3">
        <h3 id="who-has-access" className="font-semibold">
          Who has access
        </h3>
        {grants.isLoading && <Spinner />}
        {grants.isError && <Alert>{describeError(grants.error)}</Alert>}
        {grants.isSuccess && mine.length === 0 && <p className="text-sm text-slate-700">Only you.</p>}
        <ul className="flex flex-col divide-y divide-slate-200">
          {mine.map((g) => (
            <GrantRow
              key={g.id}
              grant={g}
              itemName={nodes.length > 1 ? nodes.find((n) => n.id === g.nodeId)?.name : undefined}
              onChanged={refresh}
            />
          ))}
        </ul>
      </section>
    </Dialog>
  );
}
