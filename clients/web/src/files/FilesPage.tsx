import { useInfiniteQuery, useQuery, useQueryClient } from '@tanstack/react-query';
import { useVirtualizer } from '@tanstack/react-virtual';
import { useEffect, useMemo, useRef, useState, type DragEvent } from 'react';
import { Link, useParams, useSearchParams } from 'react-router';
import { api } from '../api';
import { asAppError, describeError } from '../api/errors';
import type { FileNode, SortKey } from '../api/types';
import { NodeIcon } from '../components/NodeIcon';
import { SafeName } from '../components/SafeName';
import { Alert, Button, Empty, Spinner } from '../components/ui';
import { NotFoundContent } from '../pages/NotFound';
import { fromDrop, fromInput, type Picked } from '../upload/entries';
import { onUploadDone, uploads } from '../upload/store';
import { DetailsPanel } from './DetailsPanel';
import { ConfirmDialog, FolderPicker, NameDialog } from './dialogs';
import { ShareDialog } from '../sharing/ShareDialog';
import { LinkDialog } from '../sharing/LinkDialog';
import { formatBytes, formatDate, startDownload } from './format';

const PAGE_SIZE = 500;
const ROW_HEIGHT = 48;

type Modal =
  | { kind: 'new-folder' }
  | { kind: 'rename'; node: FileNode }
  | { kind: 'move' | 'copy'; nodes: FileNode[] }
  | { kind: 'delete'; nodes: FileNode[] }
  | { kind: 'share'; nodes: FileNode[] }
  | { kind: 'link'; node: FileNode };

function Breadcrumbs({ folderId }: { folderId: string }) {
  const { data, isError } = useQuery({
    queryKey: ['path', folderId],
    queryFn: () => api.getPath(folderId),
    enabled: folderId !== 'root',
  });
  const crumbs = folderId === 'root' ? [] : (data ?? []).slice(1);
  return (
    <nav aria-label="Breadcrumbs" className="min-w-0">
      <ol className="flex flex-wrap items-center gap-1 text-sm">
        <li>
          {crumbs.length === 0 ? (
            <h1 className="text-xl font-semibold outline-none">My files</h1>
          ) : (
            <Link to="/files">My files</Link>
          )}
        </li>
        {isError && <li className="text-slate-700">/ …</li>}
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
              <Link to={`/files/${n.id}`} className="truncate">
                <SafeName name={n.name} />
              </Link>
            )}
          </li>
        ))}
      </ol>
    </nav>
  );
}

function SortHeader({
  sort,
  descending,
  onSort,
}: {
  sort: SortKey;
  descending: boolean;
  onSort: (key: SortKey) => void;
}) {
  const col = (key: SortKey, label: string, className: string) => (
    <div className={className} role="columnheader" aria-sort={sort === key ? (descending ? 'descending' : 'ascending') : 'none'}>
      <button type="button" className="font-medium hover:underline" onClick={() => onSort(key)}>
        {label}
        <span aria-hidden>{sort === key ? (descending ? ' ↓' : ' ↑') : ''}</span>
        <span className="sr-only">, sort by {label.toLowerCase()}</span>
      </button>
    </div>
  );
  return (
    <div role="row" className="flex items-center gap-3 border-b border-slate-200 bg-slate-100 px-3 py-2 text-sm text-slate-800">
      <div className="w-6" role="columnheader">
        <span className="sr-only">Select</span>
      </div>
      {col('name', 'Name', 'min-w-0 flex-1')}
      {col('size', 'Size', 'hidden w-24 text-right sm:block')}
      {col('modified', 'Modified', 'hidden w-44 md:block')}
    </div>
  );
}

export default function FilesPage() {
  const { folderId = 'root' } = useParams();
  const [params, setParams] = useSearchParams();
  const sort = (['name', 'size', 'modified'].includes(params.get('sort') ?? '') ? params.get('sort') : 'name') as SortKey;
  const descending = params.get('desc') === '1';
  const highlight = params.get('highlight') ?? undefined;
  const queryClient = useQueryClient();
  const [selected, setSelected] = useState<ReadonlySet<string>>(new Set());
  const [details, setDetails] = useState<FileNode>();
  const [modal, setModal] = useState<Modal>();
  const [actionError, setActionError] = useState<unknown>();
  const [dragging, setDragging] = useState(false);
  const fileInput = useRef<HTMLInputElement>(null);
  const folderInput = useRef<HTMLInputElement>(null);
  const scrollRef = useRef<HTMLDivElement>(null);

  useEffect(() => {
    setSelected(new Set());
    setDetails(undefined);
    setActionError(undefined);
  }, [folderId]);

  const list = useInfiniteQuery({
    queryKey: ['children', folderId, sort, descending],
    queryFn: ({ pageParam }) => api.listChildren(folderId, { sort, descending, pageToken: pageParam, pageSize: PAGE_SIZE }),
    initialPageParam: '',
    getNextPageParam: (last) => last.nextPageToken || undefined,
  });
  const nodes = useMemo(() => list.data?.pages.flatMap((p) => p.items) ?? [], [list.data]);

  useEffect(
    () =>
      onUploadDone(() => {
        void queryClient.invalidateQueries({ queryKey: ['children'] });
        void queryClient.invalidateQueries({ queryKey: ['quota'] });
      }),
    [queryClient],
  );

  // eslint-disable-next-line react-hooks/incompatible-library -- the virtualizer is the documented React usage
  const virtualizer = useVirtualizer({
    count: nodes.length,
    getScrollElement: () => scrollRef.current,
    estimateSize: () => ROW_HEIGHT,
    overscan: 12,
  });
  const virtualItems = virtualizer.getVirtualItems();
  const lastIndex = virtualItems.length ? virtualItems[virtualItems.length - 1].index : -1;
  useEffect(() => {
    if (lastIndex >= nodes.length - 50 && list.hasNextPage && !list.isFetchingNextPage) void list.fetchNextPage();
  }, [lastIndex, nodes.length, list]);

  useEffect(() => {
    if (!highlight) return;
    const index = nodes.findIndex((n) => n.id === highlight);
    if (index >= 0) {
      virtualizer.scrollToIndex(index, { align: 'center' });
      setSelected(new Set([highlight]));
    } else if (list.hasNextPage && !list.isFetchingNextPage) void list.fetchNextPage();
  }, [highlight, nodes, list, virtualizer]);

  const refresh = async () => {
    await queryClient.invalidateQueries({ queryKey: ['children'] });
    await queryClient.invalidateQueries({ queryKey: ['quota'] });
    await queryClient.invalidateQueries({ queryKey: ['picker'] });
  };

  const chosen = nodes.filter((n) => selected.has(n.id));
  const toggle = (id: string) =>
    setSelected((s) => {
      const next = new Set(s);
      if (next.has(id)) next.delete(id);
      else next.add(id);
      return next;
    });

  const setSort = (key: SortKey) => {
    const next = new URLSearchParams(params);
    next.set('sort', key);
    if (key === sort && !descending) next.set('desc', '1');
    else next.delete('desc');
    setParams(next, { replace: true });
  };

  const enqueue = (picked: Picked) => {
    for (const f of picked.failures) uploads.addFailed(f.path, folderId, f.reason);
    uploads.add(picked.files.map((f) => ({ file: f.file, parentId: folderId, relativePath: f.relativePath })));
  };

  const onDrop = async (e: DragEvent) => {
    e.preventDefault();
    setDragging(false);
    enqueue(await fromDrop(e.dataTransfer));
  };

  const download = async (files: FileNode[]) => {
    setActionError(undefined);
    try {
      for (const f of files) {
        startDownload(await api.downloadUrl(f.id));
        await new Promise((r) => setTimeout(r, 300)); // browsers drop downloads started in the same instant
      }
    } catch (err) {
      setActionError(err);
    }
  };

  if (list.isError && asAppError(list.error).kind === 'not_found') {
    return (
      <div className="p-6">
        <NotFoundContent />
      </div>
    );
  }

  return (
    <div
      className="relative flex min-h-0 flex-1"
      onDragOver={(e) => {
        if (e.dataTransfer.types.includes('Files')) {
          e.preventDefault();
          setDragging(true);
        }
      }}
      onDragLeave={(e) => {
        if (e.currentTarget === e.target) setDragging(false);
      }}
      onDrop={(e) => void onDrop(e)}
      data-testid="dropzone"
    >
      <div className="flex min-w-0 flex-1 flex-col">
        <div className="flex flex-col gap-3 border-b border-slate-200 bg-white px-3 py-3">
          <Breadcrumbs folderId={folderId} />
          <div className="flex flex-wrap items-center gap-2" role="toolbar" aria-label="File actions">
            {chosen.length === 0 ? (
              <>
                <Button variant="primary" onClick={() => fileInput.current?.click()}>
                  Upload files
                </Button>
                <Button onClick={() => folderInput.current?.click()}>Upload folder</Button>
                <Button onClick={() => setModal({ kind: 'new-folder' })}>New folder</Button>
              </>
            ) : (
              <>
                <span className="text-sm text-slate-800" aria-live="polite">
                  {chosen.length} selected
                </span>
                {chosen.every((n) => n.kind === 'file') && (
                  <Button onClick={() => void download(chosen)}>Download</Button>
                )}
                {chosen.length === 1 && <Button onClick={() => setModal({ kind: 'rename', node: chosen[0] })}>Rename</Button>}
                <Button onClick={() => setModal({ kind: 'share', nodes: chosen })}>Share</Button>
                {chosen.length === 1 && <Button onClick={() => setModal({ kind: 'link', node: chosen[0] })}>Public link</Button>}
                <Button onClick={() => setModal({ kind: 'move', nodes: chosen })}>Move</Button>
                <Button onClick={() => setModal({ kind: 'copy', nodes: chosen })}>Copy</Button>
                <Button variant="danger" onClick={() => setModal({ kind: 'delete', nodes: chosen })}>
                  Delete
                </Button>
                {chosen.length === 1 && <Button onClick={() => setDetails(chosen[0])}>Details</Button>}
                <Button variant="ghost" onClick={() => setSelected(new Set())}>
                  Clear selection
                </Button>
              </>
            )}
            <input
              ref={fileInput}
              type="file"
              multiple
              className="hidden"
              aria-label="Choose files to upload"
              data-testid="file-input"
              onChange={(e) => {
                enqueue(fromInput(e.target.files));
                e.target.value = '';
              }}
            />
            <input
              ref={folderInput}
              type="file"
              className="hidden"
              aria-label="Choose a folder to upload"
              data-testid="folder-input"
              {...{ webkitdirectory: '' }}
              onChange={(e) => {
                enqueue(fromInput(e.target.files));
                e.target.value = '';
              }}
            />
          </div>
          {actionError ? <Alert>{describeError(actionError)}</Alert> : null}
        </div>
        <div role="table" aria-label="Files" aria-rowcount={nodes.length + 1} className="flex min-h-0 flex-1 flex-col">
          <div role="rowgroup">
            <SortHeader sort={sort} descending={descending} onSort={setSort} />
          </div>
          <div ref={scrollRef} className="min-h-0 flex-1 overflow-y-auto" data-testid="file-scroll">
            {list.isLoading && <Spinner label="Loading files…" />}
            {list.isError && (
              <div className="p-4">
                <Alert>{describeError(list.error)}</Alert>
                <Button className="mt-2" onClick={() => void list.refetch()}>
                  Try again
                </Button>
              </div>
            )}
            {list.isSuccess && nodes.length === 0 && (
              <Empty title="This folder is empty">
                <p className="text-sm">Drop files or folders here, or use Upload.</p>
              </Empty>
            )}
            {nodes.length > 0 && (
              <div role="rowgroup" className="relative w-full" style={{ height: virtualizer.getTotalSize() }}>
                {virtualItems.map((v) => {
                  const n = nodes[v.index];
                  const isSelected = selected.has(n.id);
                  return (
                    <div
                      key={n.id}
                      role="row"
                      aria-rowindex={v.index + 2}
                      aria-selected={isSelected}
                      data-testid="file-row"
                      data-name={n.name}
                      className={`absolute left-0 top-0 flex w-full items-center gap-3 border-b border-slate-100 px-3 text-sm ${isSelected ? 'bg-blue-50' : 'bg-white hover:bg-slate-50'}`}
                      style={{ height: ROW_HEIGHT, transform: `translateY(${v.start}px)` }}
                    >
                      <div role="cell" className="w-6">
                        <input
                          type="checkbox"
                          className="h-4 w-4"
                          checked={isSelected}
                          onChange={() => toggle(n.id)}
                          aria-label={`Select ${n.name}`}
                        />
                      </div>
                      <div role="cell" className="flex min-w-0 flex-1 items-center gap-2">
                        <NodeIcon kind={n.kind} />
                        {n.kind === 'folder' ? (
                          <Link to={`/files/${n.id}`} className="min-w-0 truncate text-slate-900">
                            <SafeName name={n.name} />
                          </Link>
                        ) : (
                          <button
                            type="button"
                            className="min-w-0 truncate text-left hover:underline"
                            onClick={() => setDetails(n)}
                          >
                            <SafeName name={n.name} />
                            <span className="sr-only">, show details</span>
                          </button>
                        )}
                      </div>
                      <div role="cell" className="hidden w-24 text-right text-slate-700 sm:block">
                        {n.kind === 'file' ? formatBytes(n.size) : '—'}
                      </div>
                      <div role="cell" className="hidden w-44 text-slate-700 md:block">
                        {formatDate(n.modified)}
                      </div>
                    </div>
                  );
                })}
              </div>
            )}
            {list.isFetchingNextPage && <Spinner label="Loading more…" />}
          </div>
        </div>
      </div>
      {details && <DetailsPanel node={details} onClose={() => setDetails(undefined)} />}
      {dragging && (
        <div className="pointer-events-none absolute inset-2 z-20 flex items-center justify-center rounded-lg border-4 border-dashed border-blue-700 bg-blue-50/80 text-lg font-semibold text-blue-900">
          Drop files or folders to upload here
        </div>
      )}
      {modal?.kind === 'new-folder' && (
        <NameDialog
          title="New folder"
          label="Folder name"
          initial=""
          submitLabel="Create"
          onClose={() => setModal(undefined)}
          onSubmit={async (name) => {
            await api.createFolder(folderId, name);
            await refresh();
          }}
        />
      )}
      {modal?.kind === 'rename' && (
        <NameDialog
          title="Rename"
          label="New name"
          initial={modal.node.name}
          submitLabel="Rename"
          onClose={() => setModal(undefined)}
          onSubmit={async (name) => {
            await api.rename(modal.node.id, name);
            setSelected(new Set());
            await refresh();
          }}
        />
      )}
      {(modal?.kind === 'move' || modal?.kind === 'copy') && (
        <FolderPicker
          title={`${modal.kind === 'move' ? 'Move' : 'Copy'} ${modal.nodes.length === 1 ? `“${modal.nodes[0].name}”` : `${modal.nodes.length} items`}`}
          action={modal.kind === 'move' ? 'Move' : 'Copy'}
          exclude={new Set(modal.kind === 'move' ? modal.nodes.map((n) => n.id) : [])}
          onClose={() => setModal(undefined)}
          onPick={async (target) => {
            for (const n of modal.nodes) {
              if (modal.kind === 'move') await api.move(n.id, target);
              else await api.copy(n.id, target);
            }
            setSelected(new Set());
            await refresh();
          }}
        />
      )}
      {modal?.kind === 'share' && <ShareDialog nodes={modal.nodes} onClose={() => setModal(undefined)} />}
      {modal?.kind === 'link' && <LinkDialog node={modal.node} onClose={() => setModal(undefined)} />}
      {modal?.kind === 'delete' && (
        <ConfirmDialog
          title="Move to trash?"
          confirmLabel="Move to trash"
          onClose={() => setModal(undefined)}
          onConfirm={async () => {
            for (const n of modal.nodes) await api.remove(n.id);
            setSelected(new Set());
            setDetails(undefined);
            await refresh();
          }}
        >
          {modal.nodes.length === 1 ? (
            <p>
              “<SafeName name={modal.nodes[0].name} />” goes to the trash. You can restore it from there until it is
              purged.
            </p>
          ) : (
            <p>{modal.nodes.length} items go to the trash. You can restore them from there until they are purged.</p>
          )}
        </ConfirmDialog>
      )}
    </div>
  );
}
