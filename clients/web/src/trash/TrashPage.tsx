import { useInfiniteQuery, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { Link } from 'react-router';
import { api } from '../api';
import { describeError } from '../api/errors';
import type { TrashItem } from '../api/types';
import { NodeIcon } from '../components/NodeIcon';
import { SafeName } from '../components/SafeName';
import { Alert, Button, Empty, Spinner } from '../components/ui';
import { ConfirmDialog } from '../files/dialogs';
import { formatBytes, formatDate } from '../files/format';
import { locationName, purgeIn, restoredMessage, retentionDays } from './rules';

/** Where a restore puts the entry back: its folder's path, or My files when that folder is gone. */
function OriginalLocation({ parentId }: { parentId: string }) {
  const path = useQuery({
    queryKey: ['path', parentId],
    queryFn: () => api.getPath(parentId),
    enabled: Boolean(parentId),
    retry: false,
  });
  if (!parentId) return <>My files</>;
  if (path.isLoading) return <>…</>;
  if (path.isError) return <>My files (its folder was deleted)</>;
  return <SafeName name={locationName(path.data ?? [])} />;
}

type Modal = { kind: 'purge'; item: TrashItem } | { kind: 'empty' };

export default function TrashPage() {
  const queryClient = useQueryClient();
  const [modal, setModal] = useState<Modal>();
  const [done, setDone] = useState<{ text: string; folderId: string; nodeId: string }>();
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState<string>();
  const list = useInfiniteQuery({
    queryKey: ['trash'],
    queryFn: ({ pageParam }) => api.listTrash(pageParam),
    initialPageParam: '',
    getNextPageParam: (last) => last.nextPageToken || undefined,
  });
  const items = list.data?.pages.flatMap((p) => p.items) ?? [];
  const days = retentionDays(items);

  const refresh = async () => {
    await queryClient.invalidateQueries({ queryKey: ['trash'] });
    await queryClient.invalidateQueries({ queryKey: ['quota'] });
    await queryClient.invalidateQueries({ queryKey: ['children'] });
  };

  const restore = async (item: TrashItem) => {
    setError(undefined);
    setDone(undefined);
    setBusy(item.node.id);
    try {
      const node = await api.restoreTrash(item.node.id);
      const path = await api.getPath(node.parentId || 'root').catch(() => []);
      setDone({
        text: restoredMessage(item.node.name, node.name, locationName(path)),
        folderId: node.parentId || 'root',
        nodeId: node.id,
      });
      await refresh();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(undefined);
    }
  };

  return (
    <div className="flex min-h-0 flex-1 flex-col gap-3 overflow-y-auto p-4">
      <div className="flex flex-wrap items-center justify-between gap-2">
        <h1 className="text-xl font-semibold outline-none">Trash</h1>
        <Button variant="danger" disabled={items.length === 0} onClick={() => setModal({ kind: 'empty' })}>
          Empty trash
        </Button>
      </div>
      <div className="flex flex-col gap-1 text-sm text-slate-800" data-testid="trash-rules">
        <p>
          {days !== undefined
            ? `Deleted items stay here for ${days} ${days === 1 ? 'day' : 'days'}, then they are deleted for good automatically.`
            : 'Deleted items stay here for a while, then they are deleted for good automatically.'}{' '}
          Items in the trash still count towards your storage.
        </p>
        <p>
          Restore puts an item back in the folder it was deleted from. If that folder already holds an item with the
          same name, the restored one gets a number, like “report (1).pdf”. If its folder was deleted too, it comes
          back in My files.
        </p>
      </div>
      {done && (
        <Alert kind="success">
          {done.text}{' '}
          <Link to={`/files/${done.folderId}?highlight=${encodeURIComponent(done.nodeId)}`}>Show it</Link>
        </Alert>
      )}
      {error ? <Alert>{describeError(error)}</Alert> : null}
      {list.isLoading && <Spinner label="Loading the trash…" />}
      {list.isError && <Alert>{describeError(list.error)}</Alert>}
      {list.isSuccess && items.length === 0 && <Empty title="The trash is empty" />}
      {items.length > 0 && (
        <ul aria-label="Deleted items" className="flex flex-col divide-y divide-slate-200 rounded border border-slate-200 bg-white">
          {items.map((item) => (
            <li
              key={item.node.id}
              data-testid="trash-row"
              data-name={item.node.name}
              className="flex flex-col gap-2 px-3 py-3 text-sm md:flex-row md:items-center md:justify-between"
            >
              <div className="flex min-w-0 flex-col gap-1">
                <span className="flex min-w-0 items-center gap-2 font-medium">
                  <NodeIcon kind={item.node.kind} />
                  <SafeName name={item.node.name} className="truncate" />
                  <span className="font-normal text-slate-700">{formatBytes(item.size)}</span>
                </span>
                <span className="text-slate-700">
                  From <OriginalLocation parentId={item.originalParentId} /> · deleted {formatDate(item.deleted)}
                </span>
                <span className="text-slate-700">
                  {purgeIn(item.purgeAt)}
                  {item.purgeAt ? ` (${formatDate(item.purgeAt)})` : ''}
                </span>
              </div>
              <div className="flex shrink-0 gap-2">
                <Button disabled={busy === item.node.id} onClick={() => void restore(item)}>
                  Restore<span className="sr-only"> {item.node.name}</span>
                </Button>
                <Button variant="danger" onClick={() => setModal({ kind: 'purge', item })}>
                  Delete forever<span className="sr-only"> {item.node.name}</span>
                </Button>
              </div>
            </li>
          ))}
        </ul>
      )}
      {list.hasNextPage && (
        <Button className="self-start" disabled={list.isFetchingNextPage} onClick={() => void list.fetchNextPage()}>
          Show more
        </Button>
      )}
      {modal?.kind === 'purge' && (
        <ConfirmDialog
          title="Delete for good?"
          confirmLabel="Delete forever"
          onClose={() => setModal(undefined)}
          onConfirm={async () => {
            setDone(undefined);
            await api.purgeTrash(modal.item.node.id);
            await refresh();
          }}
        >
          <p>
            “<SafeName name={modal.item.node.name} />”{modal.item.node.kind === 'folder' ? ' and everything in it' : ''}{' '}
            will be deleted for good, with all its versions, freeing {formatBytes(modal.item.size)}. This cannot be
            undone.
          </p>
        </ConfirmDialog>
      )}
      {modal?.kind === 'empty' && (
        <ConfirmDialog
          title="Empty the trash?"
          confirmLabel="Empty trash"
          onClose={() => setModal(undefined)}
          onConfirm={async () => {
            setDone(undefined);
            await api.emptyTrash();
            await refresh();
          }}
        >
          <p>
            Everything in the trash ({items.length}
            {list.hasNextPage ? '+' : ''} {items.length === 1 ? 'item' : 'items'},{' '}
            {formatBytes(items.reduce((sum, i) => sum + i.size, 0))}) will be deleted for good. This cannot be undone.
          </p>
        </ConfirmDialog>
      )}
    </div>
  );
}
