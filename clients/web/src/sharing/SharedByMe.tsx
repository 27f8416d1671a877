import { useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { Link } from 'react-router';
import { api } from '../api';
import { describeError } from '../api/errors';
import type { FileNode } from '../api/types';
import { NodeIcon } from '../components/NodeIcon';
import { SafeName } from '../components/SafeName';
import { Alert, Button, Empty, Spinner } from '../components/ui';
import { formatDate } from '../files/format';
import { SharedTabs } from './common';
import { downloadsUsed, permissionLabel, roleLabel } from './roles';

/** The name of one of my nodes, linked to its folder (shares carry the node; links only its id). */
function ItemName({ id, node }: { id: string; node?: FileNode }) {
  const q = useQuery({ queryKey: ['node', id], queryFn: () => api.getNode(id), enabled: !node, retry: false });
  const n = node ?? q.data;
  if (!n) return <span className="text-slate-700">{q.isError ? 'An item that is gone' : '…'}</span>;
  return (
    <span className="flex min-w-0 items-center gap-2 font-medium">
      <NodeIcon kind={n.kind} />
      <Link to={`/files/${n.parentId || 'root'}?highlight=${encodeURIComponent(n.id)}`} className="truncate">
        <SafeName name={n.name} />
      </Link>
    </span>
  );
}

/** Every share and public link I made: with whom or how, until when, downloads used; revoke any. */
export default function SharedByMe() {
  const queryClient = useQueryClient();
  const shares = useQuery({ queryKey: ['outgoing-shares'], queryFn: () => api.outgoingShares() });
  const links = useQuery({ queryKey: ['links'], queryFn: () => api.links() });
  const [error, setError] = useState<unknown>();
  const act = async (work: () => Promise<unknown>, key: string) => {
    setError(undefined);
    try {
      await work();
      await queryClient.invalidateQueries({ queryKey: [key] });
    } catch (err) {
      setError(err);
    }
  };
  return (
    <div className="flex min-h-0 flex-1 flex-col gap-4 overflow-y-auto p-4">
      <h1 className="text-xl font-semibold outline-none">Shared by me</h1>
      <SharedTabs />
      {error ? <Alert>{describeError(error)}</Alert> : null}
      <section aria-labelledby="people-title" className="flex flex-col gap-2">
        <h2 id="people-title" className="font-semibold">
          With people
        </h2>
        {shares.isLoading && <Spinner />}
        {shares.isError && <Alert>{describeError(shares.error)}</Alert>}
        {shares.isSuccess && shares.data.length === 0 && <Empty title="You have not shared anything with people" />}
        {shares.data && shares.data.length > 0 && (
          <ul aria-label="Shares" className="flex flex-col divide-y divide-slate-200 rounded border border-slate-200 bg-white">
            {shares.data.map((s) => (
              <li key={s.id} data-testid="outgoing-share" className="flex flex-wrap items-center justify-between gap-2 px-3 py-2 text-sm">
                <span className="flex min-w-0 flex-col gap-1">
                  <ItemName id={s.nodeId} node={s.node} />
                  <span className="text-slate-700">
                    <span className="break-all">{s.granteeEmail}</span> · {roleLabel(s.role)} · since {formatDate(s.created)}
                  </span>
                </span>
                <Button variant="ghost" onClick={() => void act(() => api.revokeShare(s.id), 'outgoing-shares')}>
                  Revoke<span className="sr-only"> share with {s.granteeEmail}</span>
                </Button>
              </li>
            ))}
          </ul>
        )}
      </section>
      <section aria-labelledby="links-title" className="flex flex-col gap-2">
        <h2 id="links-title" className="font-semibold">
          Public links
        </h2>
        {links.isLoading && <Spinner />}
        {links.isError && <Alert>{describeError(links.error)}</Alert>}
        {links.isSuccess && links.data.length === 0 && <Empty title="You have no public links" />}
        {links.data && links.data.length > 0 && (
          <ul aria-label="Links" className="flex flex-col divide-y divide-slate-200 rounded border border-slate-200 bg-white">
            {links.data.map((l) => (
              <li key={l.id} data-testid="outgoing-link" className="flex flex-wrap items-center justify-between gap-2 px-3 py-2 text-sm">
                <span className="flex min-w-0 flex-col gap-1">
                  <ItemName id={l.nodeId} />
                  <span className="text-slate-700">
                    {permissionLabel(l.permission)}
                    {l.hasPassword ? ' · password' : ''} · {l.expires ? `expires ${formatDate(l.expires)}` : 'no expiry'} ·{' '}
                    {downloadsUsed(l.downloadCount, l.maxDownloads)}
                  </span>
                </span>
                <Button variant="ghost" onClick={() => void act(() => api.revokeLink(l.id), 'links')}>
                  Revoke<span className="sr-only"> link</span>
                </Button>
              </li>
            ))}
          </ul>
        )}
      </section>
    </div>
  );
}
