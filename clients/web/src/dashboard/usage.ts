import type { ActivityEntry, Quota } from '../api/types';

export interface UsagePart {
  key: 'files' | 'versions' | 'trash' | 'uploads';
  label: string;
  bytes: number;
  /** Share of the bar (0–100); the parts never add up to more than 100. */
  percent: number;
  /** A Tailwind background class; the legend repeats it so colour is never the only cue (labels carry the meaning). */
  colour: string;
}

export interface Usage {
  parts: UsagePart[];
  /** Everything counted against the limit: stored bytes plus what open uploads hold. */
  total: number;
  limit: number;
  free: number;
  /** Of the limit, in whole percent (100 when over). */
  percent: number;
}

/**
 * GetQuota's numbers as the dashboard's bar: `used` counts live files with all their versions and the trash, so the
 * current files are what is left of it after the trash and the old versions; open uploads hold `reserved` on top.
 */
export function usageOf(q: Quota): Usage {
  const files = Math.max(0, q.used - q.trash - q.versions);
  const total = q.used + q.reserved;
  const scale = q.limit > 0 ? Math.max(q.limit, total) : total || 1;
  const raw: Omit<UsagePart, 'percent'>[] = [
    { key: 'files', label: 'Files', bytes: files, colour: 'bg-blue-700' },
    { key: 'versions', label: 'Old versions', bytes: q.versions, colour: 'bg-violet-700' },
    { key: 'trash', label: 'Trash', bytes: q.trash, colour: 'bg-amber-600' },
    { key: 'uploads', label: 'Reserved by uploads', bytes: q.reserved, colour: 'bg-slate-600' },
  ];
  const parts = raw.map((p) => ({ ...p, percent: (p.bytes / scale) * 100 }));
  return {
    parts,
    total,
    limit: q.limit,
    free: q.limit > 0 ? Math.max(0, q.limit - total) : 0,
    percent: q.limit > 0 ? Math.min(100, Math.round((total / q.limit) * 100)) : 0,
  };
}

export interface RecentFile {
  nodeId: string;
  name: string;
  time: Date | undefined;
}

/**
 * The files of the latest uploads (new files and new versions) in the caller's activity, newest first, each once:
 * the log records the node id and name of every finished upload.
 */
export function recentUploads(entries: ActivityEntry[], max: number): RecentFile[] {
  const seen = new Set<string>();
  const out: RecentFile[] = [];
  for (const e of entries) {
    const nodeId = e.details.node_id;
    if (e.kind !== 'storage.upload' || !nodeId || seen.has(nodeId)) continue;
    seen.add(nodeId);
    out.push({ nodeId, name: e.details.name ?? '', time: e.time });
    if (out.length >= max) break;
  }
  return out;
}
