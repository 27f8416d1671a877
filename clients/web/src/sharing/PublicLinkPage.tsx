import { useInfiniteQuery } from '@tanstack/react-query';
import { useEffect, useRef, useState, type DragEvent, type FormEvent } from 'react';
import { Link, useParams, useSearchParams } from 'react-router';
import { api } from '../api';
import { asAppError, describeError } from '../api/errors';
import type { LinkVisit } from '../api/types';
import { NodeIcon } from '../components/NodeIcon';
import { SafeName } from '../components/SafeName';
import { Alert, Button, Empty, Spinner, TextField } from '../components/ui';
import { formatBytes, formatDate } from '../files/format';
import { PageTitle } from '../pages/common';

type State =
  | { kind: 'checking' }
  | { kind: 'password' }
  | { kind: 'gone' }
  | { kind: 'failed'; error: unknown }
  | { kind: 'open'; visit: LinkVisit };

/** "a few seconds" / "about 5 minutes": the throttle's wait in words. */
export function waitWords(seconds: number | undefined): string {
  if (!seconds || seconds < 60) return 'a minute';
  const minutes = Math.ceil(seconds / 60);
  return minutes === 1 ? 'a minute' : `${minutes} minutes`;
}

/**
 * Why the gateway sent a browser here from a refused download (`?refused=<HTTP status>`, see gateway/envoy_config.py
 * _LINK_PAGE_LUA); undefined for any other visit. A gone link shows its own page whatever this says.
 */
export function refusedWords(status: string | null): string | undefined {
  if (!status || status === '404') return undefined; // the link's own "not found" page says it all
  if (status === '401') return 'That download needs the link’s password again: enter it, then download once more.';
  if (status === '403') return 'That download was refused: this link reached its download limit, or does not allow downloads.';
  if (status === '429') return 'Too many tries at once: wait a minute, then download again.';
  return 'That download did not work. Try again, or ask the person who shared the link.';
}

/** Expired, exhausted, revoked or never existed: one page, no hint which. */
function LinkGone() {
  return (
    <div className="flex flex-col gap-3" data-testid="link-gone">
      <PageTitle>Link not found</PageTitle>
      <p className="text-slate-800">
        This link does not work (any more). It may have expired, reached its download limit, or been revoked by the
        person who shared it. Ask them for a new one.
      </p>
    </div>
  );
}

function PasswordPrompt({ token, onOpen, onGone }: { token: string; onOpen: (v: LinkVisit) => void; onGone: () => void }) {
  const [password, setPassword] = useState('');
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      onOpen(await api.openLink(token, password));
    } catch (err) {
      const e2 = asAppError(err);
      if (e2.kind === 'not_found') return onGone();
      if (e2.kind === 'permission') setError('Wrong password. Check it and try again.');
      else if (e2.kind === 'rate_limited')
        setError(
          `Too many wrong passwords for this link. Try again in ${waitWords((err as { retryAfterSeconds?: number }).retryAfterSeconds)}.`,
        );
      else setError(describeError(err));
      setPassword('');
    } finally {
      setBusy(false);
    }
  };
  return (
    <form onSubmit={submit} className="flex flex-col gap-4" noValidate>
      <PageTitle>This link has a password</PageTitle>
      <p className="text-slate-800">Type the password the person who shared it gave you.</p>
      <TextField
        label="Password"
        type="password"
        autoComplete="off"
        autoFocus
        value={password}
        onChange={(e) => setPassword(e.target.value)}
        error={error}
      />
      <Button type="submit" variant="primary" disabled={busy || !password}>
        {busy ? 'Checking…' : 'Open'}
      </Button>
    </form>
  );
}

function FolderView({ visit, onGone }: { visit: LinkVisit; onGone: () => void }) {
  const [params] = useSearchParams();
  const folderId = params.get('folder') ?? '';
  const list = useInfiniteQuery({
    queryKey: ['link-folder', visit.token, visit.session, folderId],
    queryFn: ({ pageParam }) => api.listLinkFolder(visit, folderId, pageParam),
    initialPageParam: '',
    getNextPageParam: (last) => last.nextPageToken || undefined,
    retry: false,
  });
  const gone = list.isError && asAppError(list.error).kind === 'not_found';
  useEffect(() => {
    if (gone) onGone();
  }, [gone, onGone]);
  const pages = list.data?.pages ?? [];
  const path = pages[0]?.path ?? [];
  const nodes = pages.flatMap((p) => p.items);
  const canDownload = visit.permission === 'download';
  return (
    <div className="flex flex-col gap-3">
      <nav aria-label="Breadcrumbs">
        <ol className="flex flex-wrap items-center gap-1 text-sm">
          {path.map((n, i) => (
            <li key={n.id} className="flex min-w-0 items-center gap-1">
              {i > 0 && (
                <span aria-hidden className="text-slate-500">
                  /
                </span>
              )}
              {i === path.length - 1 ? (
                <h1 className="min-w-0 truncate text-2xl font-bold outline-none" aria-current="page">
                  <SafeName name={n.name} />
                </h1>
              ) : (
                <Link to={i === 0 ? '?' : `?folder=${encodeURIComponent(n.id)}`}>
                  <SafeName name={n.name} />
                </Link>
              )}
            </li>
          ))}
        </ol>
      </nav>
      {!canDownload && <p className="text-sm text-slate-700">This link shows names and sizes only; downloads are off.</p>}
      {list.isLoading && <Spinner />}
      {list.isError && !gone && <Alert>{describeError(list.error)}</Alert>}
      {list.isSuccess && nodes.length === 0 && <Empty title="This folder is empty" />}
      {nodes.length > 0 && (
        <ul aria-label="Files" className="flex flex-col divide-y divide-slate-200 rounded border border-slate-200 bg-white">
          {nodes.map((n) => (
            <li key={n.id} data-testid="link-row" data-name={n.name} className="flex flex-wrap items-center justify-between gap-2 px-3 py-2 text-sm">
              <span className="flex min-w-0 items-center gap-2">
                <NodeIcon kind={n.kind} />
                {n.kind === 'folder' ? (
                  <Link to={`?folder=${encodeURIComponent(n.id)}`}>
                    <SafeName name={n.name} />
                  </Link>
                ) : (
                  <SafeName name={n.name} />
                )}
                <span className="text-slate-700">
                  {n.kind === 'file' ? `${formatBytes(n.size)} · ` : ''}
                  {formatDate(n.modified)}
                </span>
              </span>
              {n.kind === 'file' && canDownload && (
                <a href={api.linkDownloadUrl(visit, n.id)} download className="rounded-md border border-slate-300 px-3 py-1">
                  Download<span className="sr-only"> {n.name}</span>
                </a>
              )}
            </li>
          ))}
        </ul>
      )}
      {list.hasNextPage && (
        <Button className="self-start" onClick={() => void list.fetchNextPage()}>
          Show more
        </Button>
      )}
    </div>
  );
}

interface Drop {
  name: string;
  size: number;
  sent: number;
  status: 'uploading' | 'done' | 'failed';
  error?: string;
}

/** Upload-only: a drop zone with progress, and nothing of what the folder already holds. */
function DropZone({ visit, onGone }: { visit: LinkVisit; onGone: () => void }) {
  const [drops, setDrops] = useState<Drop[]>([]);
  const [dragging, setDragging] = useState(false);
  const input = useRef<HTMLInputElement>(null);
  const send = async (files: File[]) => {
    for (const file of files) {
      const index = drops.length + files.indexOf(file);
      const update = (patch: Partial<Drop>) => setDrops((all) => all.map((d, i) => (i === index ? { ...d, ...patch } : d)));
      setDrops((all) => [...all, { name: file.name, size: file.size, sent: 0, status: 'uploading' }]);
      try {
        await api.uploadToLink(visit, file, { onProgress: (sent) => update({ sent }) });
        update({ sent: file.size, status: 'done' });
      } catch (err) {
        if (asAppError(err).kind === 'not_found') return onGone();
        update({ status: 'failed', error: describeError(err) });
      }
    }
  };
  return (
    <div className="flex flex-col gap-3">
      <h1 className="mb-4 text-2xl font-bold outline-none">
        Send files{visit.root.name ? <> to “<SafeName name={visit.root.name} />”</> : null}
      </h1>
      <p className="text-sm text-slate-800">
        Files you send here go to the person who shared this link. You cannot see what is in the folder, and nobody
        sees your files through this link. A file whose name is taken is stored under a new name.
      </p>
      <div
        data-testid="link-dropzone"
        onDragOver={(e) => {
          e.preventDefault();
          setDragging(true);
        }}
        onDragLeave={() => setDragging(false)}
        onDrop={(e: DragEvent) => {
          e.preventDefault();
          setDragging(false);
          void send(Array.from(e.dataTransfer.files));
        }}
        className={`flex flex-col items-center gap-3 rounded-lg border-4 border-dashed p-8 text-center ${dragging ? 'border-blue-700 bg-blue-50' : 'border-slate-300 bg-white'}`}
      >
        <p className="font-medium">Drop files here</p>
        <Button variant="primary" onClick={() => input.current?.click()}>
          Choose files
        </Button>
        <input
          ref={input}
          type="file"
          multiple
          className="hidden"
          aria-label="Choose files to send"
          data-testid="link-file-input"
          onChange={(e) => {
            void send(Array.from(e.target.files ?? []));
            e.target.value = '';
          }}
        />
      </div>
      {drops.length > 0 && (
        <ul aria-label="Sent files" className="flex flex-col gap-2">
          {drops.map((d, i) => (
            <li key={i} data-testid="drop-row" data-name={d.name} data-status={d.status} className="flex flex-col gap-1 text-sm">
              <span className="flex justify-between gap-2">
                <SafeName name={d.name} />
                <span className="text-slate-700">
                  {d.status === 'done' ? 'Sent' : d.status === 'failed' ? 'Not sent' : `${formatBytes(d.sent)} of ${formatBytes(d.size)}`}
                </span>
              </span>
              <progress
                className="h-2 w-full"
                max={d.size || 1}
                value={d.status === 'done' ? d.size || 1 : d.sent}
                aria-label={`Progress of ${d.name}`}
              />
              {d.error && <p className="text-red-800">{d.error}</p>}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

/** /s/<token>: a public link, for people without an account. */
export default function PublicLinkPage() {
  const [params] = useSearchParams();
  const refused = refusedWords(params.get('refused'));
  const page = <LinkPage />;
  if (!refused) return page;
  return (
    <div className="flex flex-col gap-3">
      <div data-testid="link-refused">
        <Alert>{refused}</Alert>
      </div>
      {page}
    </div>
  );
}

function LinkPage() {
  const { token = '' } = useParams();
  const [state, setState] = useState<State>({ kind: 'checking' });
  useEffect(() => {
    let live = true;
    (async () => {
      try {
        // A listing without a session tells "needs its password" apart without counting a wrong guess.
        await api.listLinkFolder({ token, session: '' }, '');
      } catch (err) {
        const kind = asAppError(err).kind;
        if (kind === 'unauthenticated') return live && setState({ kind: 'password' });
        if (kind === 'not_found') return live && setState({ kind: 'gone' });
        // Upload-only links refuse listings: opening tells the rest.
      }
      try {
        const visit = await api.openLink(token, '');
        if (live) setState({ kind: 'open', visit });
      } catch (err) {
        const kind = asAppError(err).kind;
        if (live) setState(kind === 'not_found' ? { kind: 'gone' } : kind === 'permission' ? { kind: 'password' } : { kind: 'failed', error: err });
      }
    })();
    return () => {
      live = false;
    };
  }, [token]);
  const gone = () => setState({ kind: 'gone' });
  switch (state.kind) {
    case 'checking':
      return <Spinner label="Opening the link…" />;
    case 'gone':
      return <LinkGone />;
    case 'failed':
      return <Alert>{describeError(state.error)}</Alert>;
    case 'password':
      return <PasswordPrompt token={token} onOpen={(visit) => setState({ kind: 'open', visit })} onGone={gone} />;
    case 'open':
      if (state.visit.permission === 'upload') return <DropZone visit={state.visit} onGone={gone} />;
      // OpenLink's root carries the name (the drop zone's title); the listing gives the breadcrumbs and entries.
      return <FolderView visit={state.visit} onGone={gone} />;
  }
}
