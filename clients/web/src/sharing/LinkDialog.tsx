import { useQuery, useQueryClient } from '@tanstack/react-query';
import { useId, useState, type FormEvent } from 'react';
import { api } from '../api';
import { describeError, fieldError } from '../api/errors';
import type { FileNode, LinkPermission, LinkSettings, PublicLink } from '../api/types';
import { Alert, Button, Dialog, Spinner, TextField } from '../components/ui';
import { formatDate } from '../files/format';
import { PERMISSIONS, downloadsUsed, permissionLabel } from './roles';
import { Qr } from './Qr';

/** The address people open: the app's public folder page, not the API route. */
export const linkAddress = (token: string): string => `${window.location.origin}/s/${token}`;

/** "2026-12-31" from a date input → the end of that day, local time (a link "until the 31st" works all day). */
export function endOfDay(value: string): Date | undefined {
  if (!value) return undefined;
  const [y, m, d] = value.split('-').map(Number);
  return new Date(y, m - 1, d, 23, 59, 59);
}

function dateValue(d: Date | undefined): string {
  if (!d) return '';
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

function LinkForm({
  node,
  link,
  onSaved,
  onCancel,
}: {
  node: FileNode;
  link?: PublicLink;
  onSaved: (saved: PublicLink) => Promise<void>;
  onCancel?: () => void;
}) {
  const name = useId();
  const [permission, setPermission] = useState<LinkPermission>(link?.permission ?? 'download');
  const [password, setPassword] = useState('');
  const [removePassword, setRemovePassword] = useState(false);
  const [expires, setExpires] = useState(dateValue(link?.expires));
  const [limit, setLimit] = useState(link?.maxDownloads ? String(link.maxDownloads) : '');
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const settings: LinkSettings = { permission, maxDownloads: limit ? Number(limit) : 0 };
      if (link) {
        if (password) settings.password = password;
        else if (removePassword) settings.password = '';
        settings.expires = expires ? endOfDay(expires) : null;
        const saved = await api.updateLink(link.id, settings);
        setPassword('');
        await onSaved(saved);
      } else {
        if (password) settings.password = password;
        settings.expires = endOfDay(expires);
        const saved = await api.createLink(node.id, settings);
        setPassword('');
        await onSaved(saved);
      }
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const general = error && !fieldError(error, 'password', 'expire_time', 'max_downloads', 'permission');
  return (
    <form onSubmit={submit} className="flex flex-col gap-3" noValidate aria-label={link ? 'Edit link' : 'New link'}>
      <fieldset className="flex flex-col gap-2">
        <legend className="mb-1 text-sm font-medium text-slate-800">Visitors may</legend>
        {PERMISSIONS.filter((p) => p.permission !== 'upload' || node.kind === 'folder').map((p) => (
          <label key={p.permission} className="flex items-start gap-2 text-sm">
            <input
              type="radio"
              name={name}
              checked={permission === p.permission}
              onChange={() => setPermission(p.permission)}
              className="mt-1 h-4 w-4"
            />
            <span>
              <span className="font-medium">{p.label}</span>
              <span className="block text-slate-700">{p.explains}</span>
            </span>
          </label>
        ))}
        {fieldError(error, 'permission') && <p className="text-sm text-red-800">{fieldError(error, 'permission')}</p>}
      </fieldset>
      <TextField
        label={link?.hasPassword ? 'New password (optional)' : 'Password (optional)'}
        type="password"
        autoComplete="new-password"
        value={password}
        onChange={(e) => setPassword(e.target.value)}
        error={fieldError(error, 'password')}
        hint="8 to 128 characters. Visitors must type it before they see anything."
      />
      {link?.hasPassword && (
        <label className="flex items-center gap-2 text-sm">
          <input type="checkbox" className="h-4 w-4" checked={removePassword} onChange={(e) => setRemovePassword(e.target.checked)} />
          Remove the password
        </label>
      )}
      <TextField
        label="Expires after (optional)"
        type="date"
        value={expires}
        onChange={(e) => setExpires(e.target.value)}
        error={fieldError(error, 'expire_time')}
        hint="The link stops working at the end of that day."
      />
      {permission !== 'upload' && (
        <TextField
          label="Download limit (optional)"
          type="number"
          min={0}
          inputMode="numeric"
          value={limit}
          onChange={(e) => setLimit(e.target.value)}
          error={fieldError(error, 'max_downloads')}
          hint="After this many downloads the link stops working. Empty: no limit."
        />
      )}
      {general ? <Alert>{describeError(error)}</Alert> : null}
      <div className="flex justify-end gap-2">
        {onCancel && <Button onClick={onCancel}>Cancel</Button>}
        <Button type="submit" variant="primary" disabled={busy}>
          {link ? 'Save link' : 'Create link'}
        </Button>
      </div>
    </form>
  );
}

function LinkCard({
  node,
  link,
  token,
  onChanged,
}: {
  node: FileNode;
  link: PublicLink;
  /** Known only right after the link was made: the server keeps a hash of it, not the token. */
  token: string | undefined;
  onChanged: () => Promise<void>;
}) {
  const [editing, setEditing] = useState(false);
  const [showQr, setShowQr] = useState(false);
  const [copied, setCopied] = useState(false);
  const [error, setError] = useState<unknown>();
  const address = token ? linkAddress(token) : '';
  const inputId = useId();
  return (
    <li className="flex flex-col gap-2 rounded border border-slate-200 p-3 text-sm" data-testid="link">
      {!address && (
        <p className="text-slate-700">
          The address of a link is shown once, when it is made (the server keeps only a fingerprint of it). Lost it?
          Make a new link and revoke this one.
        </p>
      )}
      {address && (
        <>
      <label htmlFor={inputId} className="font-medium">
        Link address
      </label>
      <div className="flex flex-wrap gap-2">
        <input
          id={inputId}
          readOnly
          value={address}
          onFocus={(e) => e.target.select()}
          className="min-w-0 flex-1 rounded-md border border-slate-400 px-2 py-1 font-mono text-xs"
        />
        <Button
          onClick={async () => {
            try {
              await navigator.clipboard.writeText(address);
              setCopied(true);
            } catch {
              setCopied(false);
              setError(new Error('copy'));
            }
          }}
        >
          Copy
        </Button>
        <Button onClick={() => setShowQr((v) => !v)} aria-expanded={showQr}>
          {showQr ? 'Hide QR code' : 'QR code'}
        </Button>
      </div>
      <p role="status" className="text-green-800">
        {copied ? 'Copied.' : ''}
      </p>
      {error ? <Alert>{(error as Error).message === 'copy' ? 'Copying did not work here: select the address and copy it.' : describeError(error)}</Alert> : null}
      {showQr && <Qr text={address} label={`QR code of the link to ${node.name}`} />}
        </>
      )}
      <p className="text-slate-700" data-testid="link-facts">
        {permissionLabel(link.permission)} · {link.hasPassword ? 'password' : 'no password'} ·{' '}
        {link.expires ? `expires ${formatDate(link.expires)}` : 'no expiry'}
        {link.permission !== 'upload' ? ` · ${downloadsUsed(link.downloadCount, link.maxDownloads)}` : ''}
      </p>
      {editing ? (
        <LinkForm
          node={node}
          link={link}
          onCancel={() => setEditing(false)}
          onSaved={async () => {
            setEditing(false);
            await onChanged();
          }}
        />
      ) : (
        <div className="flex gap-2">
          <Button onClick={() => setEditing(true)}>Edit</Button>
          <Button
            variant="danger"
            onClick={async () => {
              setError(undefined);
              try {
                await api.revokeLink(link.id);
                await onChanged();
              } catch (err) {
                setError(err);
              }
            }}
          >
            Revoke
          </Button>
        </div>
      )}
    </li>
  );
}

/** Public links of one of my items: make one (permission, password, expiry, limit), copy, QR, edit, revoke. */
export function LinkDialog({ node, onClose }: { node: FileNode; onClose: () => void }) {
  const queryClient = useQueryClient();
  const links = useQuery({ queryKey: ['links'], queryFn: () => api.links() });
  const mine = (links.data ?? []).filter((l) => l.nodeId === node.id);
  const refresh = () => queryClient.invalidateQueries({ queryKey: ['links'] });
  const [tokens, setTokens] = useState<Record<string, string>>({});
  return (
    <Dialog open title={`Public links to “${node.name}”`} onClose={onClose}>
      <p className="text-sm text-slate-800">
        Anyone with the address can open a public link, without an account. Revoke it and the address stops working at
        once.
      </p>
      {links.isLoading && <Spinner />}
      {links.isError && <Alert>{describeError(links.error)}</Alert>}
      {mine.length > 0 && (
        <ul className="flex flex-col gap-2" aria-label="Links">
          {mine.map((l) => (
            <LinkCard key={l.id} node={node} link={l} token={tokens[l.id] || l.token || undefined} onChanged={refresh} />
          ))}
        </ul>
      )}
      <section aria-labelledby="new-link" className="flex flex-col gap-2 border-t border-slate-200 pt-3">
        <h3 id="new-link" className="font-semibold">
          New link
        </h3>
        <LinkForm
          node={node}
          onSaved={async (created) => {
            setTokens((t) => ({ ...t, [created.id]: created.token }));
            await refresh();
          }}
        />
      </section>
      <div className="flex justify-end">
        <Button onClick={onClose}>Close</Button>
      </div>
    </Dialog>
  );
}
