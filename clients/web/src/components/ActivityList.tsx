import { useInfiniteQuery, type QueryKey } from '@tanstack/react-query';
import type { ReactNode } from 'react';
import type { ActivityEntry, Page } from '../api/types';
import { formatDate } from '../files/format';
import { describeDevice } from '../settings/format';
import { Alert, Button, Spinner } from './ui';

export interface ActivityListProps {
  /** The query's cache key: it must change with every filter `fetchPage` applies. */
  queryKey: QueryKey;
  /** One page of entries, newest first; '' asks for the first page. The server filters before paging. */
  fetchPage: (pageToken: string) => Promise<Page<ActivityEntry>>;
  /** Ask again on failure (the app's default: network trouble only). Admin pages show a refusal at once. */
  retry?: false;
  /** What happened, in words: the row's first line. */
  title: (entry: ActivityEntry) => ReactNode;
  /** Who did it and to whom, after the time (everyone's log names them; one's own log does not need to). */
  parties?: (entry: ActivityEntry) => ReactNode;
  /** data-testid of each row (the specs read rows by it). */
  rowTestId: string;
  /** Said when no entry matches. */
  empty: string;
  /** A failure in words, as the page words its other errors. */
  describeFailure: (error: unknown) => string;
  /** Draw the list in its own box (a page of its own; Settings' section is the box there). */
  framed?: boolean;
}

/**
 * An activity log, newest first, a page at a time: "Show older" asks the server for the next page token's entries.
 * Settings (one's own account) and Admin (everyone's) share it; they differ in what they fetch and how a row is
 * titled and attributed.
 */
export function ActivityList({
  queryKey,
  fetchPage,
  retry,
  title,
  parties,
  rowTestId,
  empty,
  describeFailure,
  framed = false,
}: ActivityListProps) {
  const list = useInfiniteQuery({
    queryKey,
    queryFn: ({ pageParam }) => fetchPage(pageParam),
    initialPageParam: '',
    getNextPageParam: (last) => last.nextPageToken || undefined,
    // Only when given: an explicit `retry: undefined` would replace the app's default with the library's.
    ...(retry === false ? { retry } : {}),
  });
  const entries = list.data?.pages.flatMap((p) => p.items) ?? [];
  if (list.isPending) return <Spinner label="Loading activity…" />;
  // A failed first page says so instead of the list; a failed older page keeps the entries shown so far.
  if (list.isError && !list.isFetchNextPageError) return <Alert>{describeFailure(list.error)}</Alert>;
  if (entries.length === 0) return <p className="text-sm text-slate-700">{empty}</p>;
  return (
    <>
      <ol
        aria-label="Activity"
        className={`flex flex-col ${framed ? 'rounded-lg border border-slate-200 bg-white' : ''}`}
      >
        {entries.map((e) => (
          <li
            key={e.id}
            data-testid={rowTestId}
            data-kind={e.kind}
            className={`border-b border-slate-200 py-2 last:border-b-0 ${framed ? 'px-3' : ''}`}
          >
            <p className="font-medium">{title(e)}</p>
            <p className="text-sm break-words text-slate-700">
              {formatDate(e.time)}
              {parties?.(e)}
              {e.ip ? ` · IP ${e.ip}` : ''}
              {e.userAgent ? ` · ${describeDevice(e.userAgent)}` : ''}
            </p>
          </li>
        ))}
      </ol>
      {list.isFetchNextPageError && <Alert>{describeFailure(list.error)}</Alert>}
      {list.hasNextPage && (
        <div>
          <Button disabled={list.isFetchingNextPage} onClick={() => void list.fetchNextPage()}>
            {list.isFetchingNextPage ? 'Loading…' : 'Show older'}
          </Button>
        </div>
      )}
    </>
  );
}
