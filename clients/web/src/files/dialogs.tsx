import { useQuery } from '@tanstack/react-query';
import { useState, type FormEvent } from 'react';
import { api } from '../api';
import { describeError, fieldError } from '../api/errors';
import type { FileNode } from '../api/types';
import { SafeName } from '../components/SafeName';
import { Alert, Button, Dialog, Spinner, TextField } from '../components/ui';

/** Asks for a name (new folder, rename) and shows the server's refusal at the field. */
export function NameDialog({
  title,
  label,
  initial,
  submitLabel,
  onSubmit,
  onClose,
}: {
  title: string;
  label: string;
  initial: string;
  submitLabel: string;
  onSubmit: (name: string) => Promise<void>;
  onClose: () => void;
}) {
  const [name, setName] = useState(initial);
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      await onSubmit(name);
      onClose();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const field = fieldError(error, 'name');
  return (
    <Dialog open title={title} onClose={onClose}>
      <form onSubmit={submit} className="flex flex-col gap-4" noValidate>
        <TextField
          label={label}
          name="name"
          autoFocus
          value={name}
          onChange={(e) => setName(e.target.value)}
          error={field ? `Name ${field.charAt(0).toLowerCase()}${field.slice(1)}` : error ? describeError(error) : undefined}
        />
        <div className="flex justify-end gap-2">
          <Button onClick={onClose}>Cancel</Button>
          <Button type="submit" variant="primary" disabled={busy || !name.trim()}>
            {submitLabel}
          </Button>
        </div>
      </form>
    </Dialog>
  );
}

/** Browse folders only, and pick one as the target of a move or copy. */
export function FolderPicker({
  title,
  action,
  exclude,
  onPick,
  onClose,
}: {
  title: string;
  action: string;
  /** Ids that cannot be the target (the items being moved). */
  exclude: ReadonlySet<string>;
  onPick: (folderId: string) => Promise<void>;
  onClose: () => void;
}) {
  const [trail, setTrail] = useState<{ id: string; name: string }[]>([{ id: 'root', name: 'My files' }]);
  const here = trail[trail.length - 1];
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const { data, isLoading, isError, error: loadError } = useQuery({
    queryKey: ['picker', here.id],
    queryFn: async () => {
      const folders: FileNode[] = [];
      let token = '';
      do {
        const page = await api.listChildren(here.id, { sort: 'name', descending: false, pageToken: token, pageSize: 500 });
        folders.push(...page.items.filter((n) => n.kind === 'folder'));
        // Folders come first: once a page holds a file, no more folders follow.
        if (page.items.some((n) => n.kind === 'file')) break;
        token = page.nextPageToken;
      } while (token);
      return folders;
    },
  });
  const pick = async () => {
    setBusy(true);
    setError(undefined);
    try {
      await onPick(here.id);
      onClose();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <Dialog open title={title} onClose={onClose}>
      <nav aria-label="Folder picker location" className="flex flex-wrap gap-1 text-sm">
        {trail.map((t, i) => (
          <span key={t.id} className="flex items-center gap-1">
            {i > 0 && <span aria-hidden>/</span>}
            {i < trail.length - 1 ? (
              <button type="button" className="text-blue-800 underline" onClick={() => setTrail(trail.slice(0, i + 1))}>
                <SafeName name={t.name} />
              </button>
            ) : (
              <span aria-current="location" className="font-semibold">
                <SafeName name={t.name} />
              </span>
            )}
          </span>
        ))}
      </nav>
      <div className="max-h-64 min-h-24 overflow-y-auto rounded border border-slate-200">
        {isLoading && <Spinner />}
        {isError && <Alert>{describeError(loadError)}</Alert>}
        {data && data.length === 0 && <p className="p-3 text-sm text-slate-700">No folders inside.</p>}
        <ul>
          {data?.map((f) => (
            <li key={f.id}>
              <button
                type="button"
                disabled={exclude.has(f.id)}
                className="flex w-full items-center gap-2 px-3 py-2 text-left text-sm hover:bg-slate-100 disabled:text-slate-400"
                onClick={() => setTrail([...trail, { id: f.id, name: f.name }])}
              >
                <span aria-hidden>📁</span>
                <SafeName name={f.name} />
              </button>
            </li>
          ))}
        </ul>
      </div>
      {error ? <Alert>{describeError(error)}</Alert> : null}
      <div className="flex justify-end gap-2">
        <Button onClick={onClose}>Cancel</Button>
        <Button variant="primary" disabled={busy || exclude.has(here.id)} onClick={() => void pick()}>
          {action} to “{here.name}”
        </Button>
      </div>
    </Dialog>
  );
}

export function ConfirmDialog({
  title,
  children,
  confirmLabel,
  onConfirm,
  onClose,
}: {
  title: string;
  children: React.ReactNode;
  confirmLabel: string;
  onConfirm: () => Promise<void>;
  onClose: () => void;
}) {
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  return (
    <Dialog open title={title} onClose={onClose}>
      <div className="text-sm text-slate-800">{children}</div>
      {error ? <Alert>{describeError(error)}</Alert> : null}
      <div className="flex justify-end gap-2">
        <Button onClick={onClose}>Cancel</Button>
        <Button
          variant="danger"
          disabled={busy}
          onClick={async () => {
            setBusy(true);
            try {
              await onConfirm();
              onClose();
            } catch (err) {
              setError(err);
            } finally {
              setBusy(false);
            }
          }}
        >
          {confirmLabel}
        </Button>
      </div>
    </Dialog>
  );
}
