import { useInfiniteQuery } from '@tanstack/react-query';
import { Link, useSearchParams } from 'react-router';
import { api } from '../api';
import { describeError } from '../api/errors';
import { NodeIcon } from '../components/NodeIcon';
import { SafeName } from '../components/SafeName';
import { Alert, Button, Empty, Spinner } from '../components/ui';
import { formatBytes, formatDate } from './format';

/** Name search; each result opens its folder with the entry selected. */
export default function SearchPage() {
  const [params] = useSearchParams();
  const q = params.get('q')?.trim() ?? '';
  const results = useInfiniteQuery({
    queryKey: ['search', q],
    queryFn: ({ pageParam }) => api.search(q, pageParam),
    initialPageParam: '',
    getNextPageParam: (last) => last.nextPageToken || undefined,
    enabled: q.length > 0,
  });
  const nodes = results.data?.pages.flatMap((p) => p.items) ?? [];
  return (
    <div className="flex min-h-0 flex-1 flex-col gap-3 overflow-y-auto p-4">
      <h1 className="text-xl font-semibold outline-none">{q ? `Search results for “${q}”` : 'Search'}</h1>
      {!q && <Empty title="Type a name in the search box above" />}
      {results.isLoading && <Spinner label="Searching…" />}
      {results.isError && <Alert>{describeError(results.error)}</Alert>}
      {results.isSuccess && nodes.length === 0 && <Empty title="Nothing matches this name" />}
      <ul className="flex flex-col divide-y divide-slate-200 rounded border border-slate-200 bg-white">
        {nodes.map((n) => (
          <li key={n.id} className="flex flex-wrap items-center justify-between gap-2 px-3 py-2 text-sm" data-testid="search-result">
            <span className="flex min-w-0 items-center gap-2">
              <NodeIcon kind={n.kind} />
              <SafeName name={n.name} className="truncate font-medium" />
              <span className="text-slate-700">
                {n.kind === 'file' ? `${formatBytes(n.size)} · ` : ''}
                {formatDate(n.modified)}
              </span>
            </span>
            <Link to={`/files/${n.parentId || 'root'}?highlight=${encodeURIComponent(n.id)}`}>
              Open folder<span className="sr-only"> of {n.name}</span>
            </Link>
          </li>
        ))}
      </ul>
      {results.hasNextPage && (
        <Button className="self-start" onClick={() => void results.fetchNextPage()} disabled={results.isFetchingNextPage}>
          Show more
        </Button>
      )}
    </div>
  );
}
