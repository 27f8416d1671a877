import { useInfiniteQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { Link } from 'react-router';
import { api } from '../api';
import { describeError } from '../api/errors';
import type { ShareGrant } from '../api/types';
import { NodeIcon } from '../components/NodeIcon';
import { SafeName } from '../components/SafeName';
import { Alert, Button, Empty, Spinner } from '../components/ui';
import { formatBytes, formatDate, startDownload } from '../files/format';
import { NoLongerShared, SharedTabs, isGone } from './common';
import { allowed, roleLabel } from './roles';

export function useIncomingShares() {
  return useInfiniteQuery({
    queryKey: ['incoming-shares'],
    queryFn: ({ pageParam }) => api.incomingShares(pageParam),
    initialPageParam: '',
    getNextPageParam: (last) => last.nextPageToken || undefined,
  });
}

/** "Ada Lovelace (ada@example.org)", or whichever of the two the server could give. */
function sharedBy(s: ShareGrant): string {
  if (s.ownerName && s.ownerEmail) return `${s.ownerName} (${s.ownerEmail})`;
  return s.ownerName || s.ownerEmail;
}

/** What others shared with me: folders open in the shared browser, files offer what the role allows. */
export default function SharedWithMe() {
  const list = useIncomingShares();
  const [error, setError] = useState<unknown>();
  const shares = (list.data?.pages.flatMap((p) => p.items) ?? []).filter((s): s is ShareGrant & { node: NonNullable<ShareGrant['node']> } =>
    Boolean(s.node),
  );
  if (isGone(error)) return <NoLongerShared />;
  return (
    <div className="flex min-h-0 flex-1 flex-col gap-3 overflow-y-auto p-4">
      <h1 className="text-xl font-semibold outline-none">Shared with me</h1>
      <SharedTabs />
      {error ? <Alert>{describeError(error)}</Alert> : null}
      {list.isLoading && <Spinner label="Loading shares…" />}
      {list.isError && <Alert>{describeError(list.error)}</Alert>}
      {list.isSuccess && shares.length === 0 && <Empty title="Nothing is shared with you yet" />}
      {shares.length > 0 && (
        <ul aria-label="Shared with me" className="flex flex-col divide-y divide-slate-200 rounded border border-slate-200 bg-white">
          {shares.map((s) => (
            <li
              key={s.id}
              data-testid="incoming-share"
              data-name={s.node.name}
              className="flex flex-wrap items-center justify-between gap-2 px-3 py-2 text-sm"
            >
              <span className="flex min-w-0 flex-col">
                <span className="flex min-w-0 items-center gap-2 font-medium">
                  <NodeIcon kind={s.node.kind} />
                  {s.node.kind === 'folder' ? (
                    <Link to={`/shared/f/${s.node.id}`} className="truncate">
                      <SafeName name={s.node.name} />
                    </Link>
                  ) : (
                    <SafeName name={s.node.name} className="truncate" />
                  )}
                </span>
                <span className="text-slate-700">
                  {roleLabel(s.role)} · {s.node.kind === 'file' ? `${formatBytes(s.node.size)} · ` : ''}shared{' '}
                  {formatDate(s.created)}
                </span>
                {(s.ownerName || s.ownerEmail) && (
                  <span className="text-slate-700" data-testid="shared-by">
                    by <SafeName name={sharedBy(s)} />
                  </span>
                )}
              </span>
              {s.node.kind === 'file' && allowed(s.role, 'download') && (
                <Button
                  onClick={async () => {
                    setError(undefined);
                    try {
                      startDownload(await api.downloadUrl(s.node.id));
                    } catch (err) {
                      setError(err);
                    }
                  }}
                >
                  Download<span className="sr-only"> {s.node.name}</span>
                </Button>
              )}
            </li>
          ))}
        </ul>
      )}
      {list.hasNextPage && (
        <Button className="self-start" disabled={list.isFetchingNextPage} onClick={() => void list.fetchNextPage()}>
          Show more
        </Button>
      )}
    </div>
  );
}
