import { useState } from 'react';
import { SafeName } from '../components/SafeName';
import { Button } from '../components/ui';
import { formatBytes, type QueueItem } from './queue';
import { uploads, useUploads } from './store';

const LABEL: Record<QueueItem['status'], string> = {
  queued: 'Waiting',
  uploading: 'Uploading',
  'waiting-network': 'Connection lost, retrying',
  finishing: 'Checking',
  conflict: 'Name already taken',
  done: 'Done',
  failed: 'Failed',
  cancelled: 'Cancelled',
  skipped: 'Skipped',
};

function eta(seconds: number | undefined): string {
  if (seconds === undefined || !Number.isFinite(seconds)) return '';
  if (seconds < 60) return `${Math.ceil(seconds)} s left`;
  return `${Math.ceil(seconds / 60)} min left`;
}

function Row({ item }: { item: QueueItem }) {
  const percent = item.size > 0 ? Math.floor((item.sent / item.size) * 100) : item.status === 'done' ? 100 : 0;
  const active = ['queued', 'uploading', 'waiting-network', 'finishing'].includes(item.status);
  return (
    <li className="flex flex-col gap-1 border-b border-slate-100 px-3 py-2" data-testid="upload-row" data-status={item.status} data-sent={item.sent} data-name={item.displayName}>
      <div className="flex items-center justify-between gap-2">
        <SafeName name={item.displayName} className="min-w-0 truncate text-sm font-medium" />
        <span className="shrink-0 text-xs text-slate-700" data-testid="upload-status">
          {LABEL[item.status]}
        </span>
      </div>
      {active && (
        <>
          <progress className="h-1.5 w-full accent-blue-700" max={100} value={percent} aria-label={`${item.displayName} progress`} />
          <p className="text-xs text-slate-700">
            {formatBytes(item.sent)} of {formatBytes(item.size)}
            {item.speed > 0 ? ` · ${formatBytes(Math.round(item.speed))}/s · ${eta(item.eta)}` : ''}
          </p>
        </>
      )}
      {item.error && item.status !== 'done' && (
        <p className="text-xs text-red-800" data-testid="upload-error">
          {item.error}
        </p>
      )}
      <div className="flex flex-wrap gap-2">
        {active && (
          <Button variant="ghost" className="px-2 py-1 text-xs" onClick={() => uploads.cancel(item.id)}>
            Cancel<span className="sr-only"> {item.displayName}</span>
          </Button>
        )}
        {(item.status === 'failed' || item.status === 'cancelled') && item.file.size === item.size && item.file.lastModified > 0 && (
          <Button variant="ghost" className="px-2 py-1 text-xs" onClick={() => uploads.retry(item.id)}>
            Retry<span className="sr-only"> {item.displayName}</span>
          </Button>
        )}
        {item.status === 'conflict' && (
          <>
            <Button className="px-2 py-1 text-xs" onClick={() => uploads.resolveConflict(item.id, 'rename')}>
              Keep both
            </Button>
            <Button className="px-2 py-1 text-xs" onClick={() => uploads.resolveConflict(item.id, 'replace')}>
              Replace
            </Button>
            <Button className="px-2 py-1 text-xs" onClick={() => uploads.resolveConflict(item.id, 'skip')}>
              Skip
            </Button>
          </>
        )}
      </div>
    </li>
  );
}

export function UploadPanel() {
  const items = useUploads();
  const [collapsed, setCollapsed] = useState(false);
  if (items.length === 0) return null;
  const active = items.filter((i) => ['queued', 'uploading', 'waiting-network', 'finishing'].includes(i.status)).length;
  const failed = items.filter((i) => i.status === 'failed').length;
  const conflicts = items.filter((i) => i.status === 'conflict').length;
  const summary =
    active > 0
      ? `Uploading ${active} file${active === 1 ? '' : 's'}`
      : `Uploads finished${failed ? `, ${failed} failed` : ''}`;
  return (
    <section
      aria-label="Uploads"
      className="fixed inset-x-2 bottom-2 z-40 flex max-h-[60vh] flex-col rounded-lg border border-slate-300 bg-white shadow-xl sm:left-auto sm:w-96"
    >
      <div className="flex items-center justify-between gap-2 border-b border-slate-200 px-3 py-2">
        <h2 className="text-sm font-semibold" aria-live="polite" data-testid="upload-summary">
          {summary}
          {conflicts ? ` · ${conflicts} need a choice` : ''}
        </h2>
        <div className="flex gap-1">
          {active === 0 && (
            <Button variant="ghost" className="px-2 py-1 text-xs" onClick={() => uploads.clearFinished()}>
              Clear
            </Button>
          )}
          <Button variant="ghost" className="px-2 py-1 text-xs" aria-expanded={!collapsed} onClick={() => setCollapsed((c) => !c)}>
            {collapsed ? 'Show' : 'Hide'}
          </Button>
        </div>
      </div>
      {!collapsed && <ul className="overflow-y-auto">{items.map((item) => <Row key={item.id} item={item} />)}</ul>}
    </section>
  );
}
