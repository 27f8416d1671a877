import { useInfiniteQuery, useQuery, useQueryClient } from '@tanstack/react-query';
import { useEffect, useRef, useState } from 'react';
import { Link, useParams } from 'react-router';
import { api } from '../api';
import { describeError } from '../api/errors';
import type { FileNode } from '../api/types';
import { NodeIcon } from '../components/NodeIcon';
import { SafeName } from '../components/SafeName';
import { Alert, Button, Empty, Spinner } from '../components/ui';
import { NameDialog } from '../files/dialogs';
import { formatBytes, formatDate, startDownload } from '../files/format';
import { fromInput } from '../upload/entries';
import { onUploadDone, uploads, useUploads } from '../upload/store';
import { NoLongerShared, isGone } from './common';
import { allowed, roleLabel } from './roles';
import { useIncomingShares } from './SharedWithMe';

type Modal = { kind: 'new-folder' } | { kind: 'rename'; node: FileNode };

/**
 * A folder someone shared with me, or one inside it. Breadcrumbs start at the shared folder (the server's path
 * stops there); the actions offered are exactly what my role allows.
 */
export default function SharedFolder() {
  const { folderId = '' } = useParams();
  const queryClient = useQueryClient();
  const [modal, setModal] = useState<Modal>();
  // An action's refusal belongs to the folder it happened in: it is not shown after moving to another.
  const [failure, setFailure] = useState<{ folderId: string; error: unknown }>();
  const error = failure?.folderId === folderId ? failure.error : undefined;
  const setError = (e: unknown) => setFailure(e === undefined ? undefined : { folderId, error: e });
  const fileInput = useRef<HTMLInputElement>(null);
  const path = useQuery({ queryKey: ['path', folderId], queryFn: () => api.getPath(folderId), retry: false });
  const incoming = useIncomingShares();
  const list = useInfiniteQuery({
    queryKey: ['children', folderId, 'name', false],
    queryFn: ({ pageParam }) => api.listChildren(folderId, { sort: 'name', descending: false, pageToken: pageParam, pageSize: 500 }),
    initialPageParam: '',
    getNextPageParam: (last) => last.nextPageToken || undefined,
    retry: false,
  });
  useEffect(
    () => onUploadDone(() => void queryClient.invalidateQueries({ queryKey: ['children', folderId] })),
    [queryClient, folderId],
  );
  // An upload into this folder that fails may mean the share ended: listing again tells ("no longer shared").
  const failedHere = useUploads().filter((u) => u.parentId === folderId && u.status === 'failed').length;
  useEffect(() => {
    if (failedHere > 0) void queryClient.invalidateQueries({ queryKey: ['children', folderId] });
  }, [failedHere, queryClient, folderId]);

  const top = path.data?.[0];
  const grant = (incoming.data?.pages.flatMap((p) => p.items) ?? []).find((s) => s.nodeId === top?.id);
  const role = grant?.role;
  const nodes = list.data?.pages.flatMap((p) => p.items) ?? [];

  const act = async (work: () => Promise<unknown>) => {
    setError(undefined);
    try {
      await work();
    } catch (err) {
      setError(err);
    }
  };
  const refresh = () => queryClient.invalidateQueries({ queryKey: ['children', folderId] });
  /** A dialog's action refused because the share ended: close it and show "no longer shared" instead of a field error. */
  const inDialog = (work: (name: string) => Promise<void>) => async (name: string) => {
    try {
      await work(name);
    } catch (err) {
      if (!isGone(err)) throw err;
      setModal(undefined);
      setError(err);
    }
  };

  if (isGone(list.error) || isGone(path.error) || isGone(error) || (incoming.isSuccess && path.isSuccess && !grant)) {
    return <NoLongerShared />;
  }
  const crumbs = path.data ?? [];
  return (
    <div className="flex min-h-0 flex-1 flex-col gap-3 overflow-y-auto p-4">
      <nav aria-label="Breadcrumbs">
        <ol className="flex flex-wrap items-center gap-1 text-sm">
          <li>
            <Link to="/shared">Shared with me</Link>
          </li>
          {crumbs.map((n, i) => (
            <li key={n.id} className="flex min-w-0 items-center gap-1">
              <span aria-hidden className="text-slate-500">
                /
              </span>
              {i === crumbs.length - 1 ? (
                <h1 className="min-w-0 truncate text-xl font-semibold outline-none" aria-current="page">
                  <SafeName name={n.name} />
                </h1>
              ) : (
                <Link to={`/shared/f/${n.id}`} className="truncate">
                  <SafeName name={n.name} />
                </Link>
              )}
            </li>
          ))}
        </ol>
      </nav>
      {role && (
        <p className="text-sm text-slate-700" data-testid="my-role">
          Your role: {roleLabel(role)}
        </p>
      )}
      {(allowed(role, 'upload') || allowed(role, 'new-folder')) && (
        <div className="flex flex-wrap gap-2" role="toolbar" aria-label="Folder actions">
          <Button variant="primary" onClick={() => fileInput.current?.click()}>
            Upload files
          </Button>
          <Button onClick={() => setModal({ kind: 'new-folder' })}>New folder</Button>
          <input
            ref={fileInput}
            type="file"
            multiple
            className="hidden"
            aria-label="Choose files to upload"
            data-testid="file-input"
            onChange={(e) => {
              const picked = fromInput(e.target.files);
              uploads.add(picked.files.map((f) => ({ file: f.file, parentId: folderId, relativePath: f.relativePath })));
              e.target.value = '';
            }}
          />
        </div>
      )}
      {error ? <Alert>{describeError(error)}</Alert> : null}
      {list.isLoading && <Spinner label="Loading files…" />}
      {list.isError && <Alert>{describeError(list.error)}</Alert>}
      {list.isSuccess && nodes.length === 0 && <Empty title="This folder is empty" />}
      {nodes.length > 0 && (
        <ul aria-label="Files" className="flex flex-col divide-y divide-slate-200 rounded border border-slate-200 bg-white">
          {nodes.map((n) => (
            <li
              key={n.id}
              data-testid="file-row"
              data-name={n.name}
              className="flex flex-wrap items-center justify-between gap-2 px-3 py-2 text-sm"
            >
              <span className="flex min-w-0 items-center gap-2">
                <NodeIcon kind={n.kind} />
                {n.kind === 'folder' ? (
                  <Link to={`/shared/f/${n.id}`} className="truncate">
                    <SafeName name={n.name} />
                  </Link>
                ) : (
                  <SafeName name={n.name} className="truncate" />
                )}
                <span className="text-slate-700">
                  {n.kind === 'file' ? `${formatBytes(n.size)} · ` : ''}
                  {formatDate(n.modified)}
                </span>
              </span>
              <span className="flex gap-2">
                {n.kind === 'file' && allowed(role, 'download') && (
                  <Button onClick={() => void act(async () => startDownload(await api.downloadUrl(n.id)))}>
                    Download<span className="sr-only"> {n.name}</span>
                  </Button>
                )}
                {allowed(role, 'rename') && (
                  <Button onClick={() => setModal({ kind: 'rename', node: n })}>
                    Rename<span className="sr-only"> {n.name}</span>
                  </Button>
                )}
              </span>
            </li>
          ))}
        </ul>
      )}
      {list.hasNextPage && (
        <Button className="self-start" disabled={list.isFetchingNextPage} onClick={() => void list.fetchNextPage()}>
          Show more
        </Button>
      )}
      {modal?.kind === 'new-folder' && (
        <NameDialog
          title="New folder"
          label="Folder name"
          initial=""
          submitLabel="Create"
          onClose={() => setModal(undefined)}
          onSubmit={inDialog(async (name) => {
            await api.createFolder(folderId, name);
            await refresh();
          })}
        />
      )}
      {modal?.kind === 'rename' && (
        <NameDialog
          title="Rename"
          label="New name"
          initial={modal.node.name}
          submitLabel="Rename"
          onClose={() => setModal(undefined)}
          onSubmit={inDialog(async (name) => {
            await api.rename(modal.node.id, name);
            await refresh();
          })}
        />
      )}
    </div>
  );
}
