import { useQuery, useQueryClient } from '@tanstack/react-query';
import { useEffect, useRef, useState } from 'react';
import { Link, useNavigate } from 'react-router';
import { api } from '../api';
import { describeError } from '../api/errors';
import { useAuth } from '../auth/store';
import { SafeName } from '../components/SafeName';
import { Alert, Button, Spinner } from '../components/ui';
import { NameDialog } from '../files/dialogs';
import { formatBytes, formatDate } from '../files/format';
import { Section } from '../settings/common';
import { fromInput } from '../upload/entries';
import { onUploadDone, uploads } from '../upload/store';
import { describeKind } from './kinds';
import { recentUploads, usageOf } from './usage';

const SHORTCUT =
  'inline-flex items-center rounded-md border border-slate-300 bg-white px-3 py-2 text-sm font-medium text-slate-800 no-underline hover:bg-slate-100 hover:no-underline focus-visible:outline-2 focus-visible:outline-offset-2 focus-visible:outline-blue-700';

const PRIMARY =
  'inline-flex items-center rounded-md bg-blue-700 px-3 py-2 text-sm font-medium text-white no-underline hover:bg-blue-800 hover:no-underline focus-visible:outline-2 focus-visible:outline-offset-2 focus-visible:outline-blue-700';

function UsageSection() {
  const { data, error, isPending } = useQuery({ queryKey: ['quota'], queryFn: () => api.quota() });
  return (
    <Section title="Storage" testId="dashboard-usage">
      {isPending ? (
        <Spinner label="Loading storage use…" />
      ) : error || !data ? (
        <Alert>{describeError(error)}</Alert>
      ) : (
        <UsageBar usage={usageOf(data)} />
      )}
    </Section>
  );
}

function UsageBar({ usage }: { usage: ReturnType<typeof usageOf> }) {
  return (
    <>
      <p className="text-base" data-testid="usage-total" data-bytes={usage.total}>
        <strong>{formatBytes(usage.total)}</strong> of {usage.limit > 0 ? formatBytes(usage.limit) : 'unlimited'} used
        {usage.limit > 0 ? ` (${usage.percent}%) · ${formatBytes(usage.free)} free` : ''}
      </p>
      <div
        role="progressbar"
        aria-label="Storage used"
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={usage.percent}
        aria-valuetext={`${formatBytes(usage.total)} of ${usage.limit > 0 ? formatBytes(usage.limit) : 'unlimited'}`}
        className="flex h-4 overflow-hidden rounded bg-slate-200"
      >
        {usage.parts.map((p) =>
          p.percent > 0 ? (
            // Widths through the CSSOM (React's style prop), which the CSP allows.
            <div key={p.key} className={`h-full ${p.colour}`} style={{ width: `${p.percent}%` }} />
          ) : null,
        )}
      </div>
      <dl className="grid grid-cols-1 gap-2 text-sm sm:grid-cols-2">
        {usage.parts.map((p) => (
          <div key={p.key} className="flex items-center gap-2" data-testid={`usage-${p.key}`} data-bytes={p.bytes}>
            <span aria-hidden className={`inline-block h-3 w-3 rounded-sm ${p.colour}`} />
            <dt className="text-slate-800">{p.label}</dt>
            <dd className="ml-auto font-medium">{formatBytes(p.bytes)}</dd>
          </div>
        ))}
      </dl>
      <p className="text-sm text-slate-700">
        Old versions and the trash count towards your limit: <Link to="/trash">empty the trash</Link> to free space.
      </p>
    </>
  );
}

function RecentFiles() {
  const activity = useQuery({ queryKey: ['my-activity-recent'], queryFn: () => api.myActivity() });
  const recent = recentUploads(activity.data?.items ?? [], 8);
  // Only files that are still there (and under their current name): a deleted one is left out.
  const nodes = useQuery({
    queryKey: ['recent-nodes', recent.map((r) => r.nodeId).join(',')],
    queryFn: async () =>
      (await Promise.all(recent.map((r) => api.getNode(r.nodeId).catch(() => undefined)))).filter((n) => n !== undefined),
    enabled: activity.isSuccess,
  });
  return (
    <Section title="Recent files" testId="dashboard-recent-files">
      {activity.isPending || (activity.isSuccess && nodes.isPending) ? (
        <Spinner label="Loading recent files…" />
      ) : activity.isError ? (
        <Alert>{describeError(activity.error)}</Alert>
      ) : !nodes.data?.length ? (
        <p className="text-sm text-slate-700">No uploads yet. Files you upload appear here.</p>
      ) : (
        <ul className="flex flex-col" aria-label="Recently uploaded files">
          {nodes.data.map((n) => (
            <li key={n.id} className="flex items-center gap-2 border-b border-slate-200 py-2 last:border-b-0">
              <Link to={n.parentId && n.parentId !== 'root' ? `/files/${n.parentId}` : '/files'} className="min-w-0 truncate">
                <SafeName name={n.name} />
              </Link>
              <span className="ml-auto shrink-0 text-sm text-slate-700">
                {formatBytes(n.size)} · {formatDate(n.modified)}
              </span>
            </li>
          ))}
        </ul>
      )}
    </Section>
  );
}

function RecentActivity() {
  const activity = useQuery({ queryKey: ['my-activity-recent'], queryFn: () => api.myActivity() });
  const entries = (activity.data?.items ?? []).slice(0, 8);
  return (
    <Section title="Recent activity" testId="dashboard-activity">
      {activity.isPending ? (
        <Spinner label="Loading activity…" />
      ) : activity.isError ? (
        <Alert>{describeError(activity.error)}</Alert>
      ) : entries.length === 0 ? (
        <p className="text-sm text-slate-700">Nothing yet.</p>
      ) : (
        <ol aria-label="Recent activity" className="flex flex-col">
          {entries.map((e) => (
            <li key={e.id} className="border-b border-slate-200 py-2 last:border-b-0">
              <p className="font-medium">
                {describeKind(e.kind)}
                {e.details.name ? (
                  <>
                    : <SafeName name={e.details.name} />
                  </>
                ) : null}
              </p>
              <p className="text-sm text-slate-700">{formatDate(e.time)}</p>
            </li>
          ))}
        </ol>
      )}
      <Link to="/settings" className="text-sm">
        All my activity
      </Link>
    </Section>
  );
}

/** The landing page after login: storage use with its breakdown, recent files and activity, shortcuts. */
export default function DashboardPage() {
  const me = useAuth((s) => s.me);
  const queryClient = useQueryClient();
  const navigate = useNavigate();
  const fileInput = useRef<HTMLInputElement>(null);
  const [newFolder, setNewFolder] = useState(false);
  const [queued, setQueued] = useState<string>();
  useEffect(
    () =>
      onUploadDone(() => {
        void queryClient.invalidateQueries({ queryKey: ['quota'] });
        void queryClient.invalidateQueries({ queryKey: ['my-activity-recent'] });
        void queryClient.invalidateQueries({ queryKey: ['children'] });
      }),
    [queryClient],
  );
  return (
    <div className="flex min-h-0 flex-1 flex-col overflow-y-auto p-4">
      <div className="flex w-full max-w-4xl flex-col gap-4">
        <h1 className="text-xl font-semibold outline-none">Dashboard</h1>
        <p className="text-slate-800">Welcome{me?.displayName ? `, ${me.displayName}` : ''}.</p>
        <nav aria-label="Shortcuts" className="flex flex-wrap gap-2">
          <Link to="/files" className={PRIMARY}>
            My files
          </Link>
          <Button onClick={() => fileInput.current?.click()}>Upload files</Button>
          <Button onClick={() => setNewFolder(true)}>New folder</Button>
          <Link to="/shared" className={SHORTCUT}>
            Shared
          </Link>
          <Link to="/trash" className={SHORTCUT}>
            Trash
          </Link>
          <Link to="/settings" className={SHORTCUT}>
            Settings
          </Link>
        </nav>
        <input
          ref={fileInput}
          type="file"
          multiple
          className="hidden"
          aria-label="Choose files to upload to My files"
          data-testid="dashboard-file-input"
          onChange={(e) => {
            const picked = fromInput(e.target.files);
            for (const f of picked.failures) uploads.addFailed(f.path, 'root', f.reason);
            uploads.add(picked.files.map((f) => ({ file: f.file, parentId: 'root', relativePath: f.relativePath })));
            setQueued(`${picked.files.length} file${picked.files.length === 1 ? '' : 's'} uploading to My files.`);
            e.target.value = '';
          }}
        />
        {queued && <Alert kind="info">{queued}</Alert>}
        <UsageSection />
        <div className="grid grid-cols-1 gap-4 lg:grid-cols-2">
          <RecentFiles />
          <RecentActivity />
        </div>
      </div>
      {newFolder && (
        <NameDialog
          title="New folder in My files"
          label="Folder name"
          initial=""
          submitLabel="Create"
          onClose={() => setNewFolder(false)}
          onSubmit={async (name) => {
            const folder = await api.createFolder('root', name);
            await queryClient.invalidateQueries({ queryKey: ['children'] });
            void navigate(`/files/${folder.id}`);
          }}
        />
      )}
    </div>
  );
}
