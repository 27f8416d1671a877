import { useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { api } from '../api';
import { describeError } from '../api/errors';
import type { FileNode } from '../api/types';
import { SafeName } from '../components/SafeName';
import { Alert, Button, Spinner } from '../components/ui';
import { formatBytes, formatDate, startDownload } from './format';

export function DetailsPanel({ node, onClose }: { node: FileNode; onClose: () => void }) {
  const queryClient = useQueryClient();
  const isFile = node.kind === 'file';
  const versions = useQuery({
    queryKey: ['versions', node.id],
    queryFn: () => api.versions(node.id),
    enabled: isFile,
  });
  const [error, setError] = useState<unknown>();
  const act = async (work: () => Promise<void>) => {
    setError(undefined);
    try {
      await work();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <aside
      aria-label="Details"
      className="fixed inset-0 z-30 flex flex-col gap-3 overflow-y-auto bg-white p-4 md:static md:w-80 md:border-l md:border-slate-200"
      data-testid="details"
    >
      <div className="flex items-start justify-between gap-2">
        <h2 className="min-w-0 break-words text-lg font-semibold">
          <SafeName name={node.name} />
        </h2>
        <Button variant="ghost" onClick={onClose}>
          Close<span className="sr-only"> details</span>
        </Button>
      </div>
      <dl className="grid grid-cols-[auto_1fr] gap-x-3 gap-y-1 text-sm">
        <dt className="text-slate-700">Type</dt>
        <dd>{isFile ? node.contentType || 'File' : 'Folder'}</dd>
        {isFile && (
          <>
            <dt className="text-slate-700">Size</dt>
            <dd>
              {formatBytes(node.size)} ({node.size.toLocaleString()} bytes)
            </dd>
          </>
        )}
        <dt className="text-slate-700">Created</dt>
        <dd>{formatDate(node.created)}</dd>
        <dt className="text-slate-700">Modified</dt>
        <dd>{formatDate(node.modified)}</dd>
        {isFile && (
          <>
            <dt className="text-slate-700">SHA-256</dt>
            <dd className="break-all font-mono text-xs" data-testid="sha256">
              {node.sha256}
            </dd>
          </>
        )}
      </dl>
      {error ? <Alert>{describeError(error)}</Alert> : null}
      {isFile && (
        <section aria-labelledby="versions-title" className="flex flex-col gap-2">
          <h3 id="versions-title" className="font-semibold">
            Versions
          </h3>
          {versions.isLoading && <Spinner />}
          {versions.isError && <Alert>{describeError(versions.error)}</Alert>}
          <ul className="flex flex-col gap-2">
            {versions.data?.map((v) => (
              <li key={v.id} className="rounded border border-slate-200 p-2 text-sm" data-testid="version">
                <p className="font-medium">
                  Version {v.number}
                  {v.current ? ' (current)' : ''}
                </p>
                <p className="text-slate-700">
                  {formatBytes(v.size)} · {formatDate(v.created)}
                </p>
                <div className="mt-1 flex gap-2">
                  <Button
                    className="px-2 py-1 text-xs"
                    onClick={() => void act(async () => startDownload(await api.downloadUrl(node.id, v.id)))}
                  >
                    Download<span className="sr-only"> version {v.number}</span>
                  </Button>
                  {!v.current && (
                    <Button
                      className="px-2 py-1 text-xs"
                      onClick={() =>
                        void act(async () => {
                          await api.restoreVersion(node.id, v.id);
                          await queryClient.invalidateQueries({ queryKey: ['versions', node.id] });
                          await queryClient.invalidateQueries({ queryKey: ['children'] });
                          await queryClient.invalidateQueries({ queryKey: ['quota'] });
                        })
                      }
                    >
                      Restore<span className="sr-only"> version {v.number}</span>
                    </Button>
                  )}
                </div>
              </li>
            ))}
          </ul>
        </section>
      )}
    </aside>
  );
}
