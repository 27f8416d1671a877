/**
 * The upload queue: which files are waiting, in flight, done or failed, independent of React and of the network
 * (an `Uploader` does the chunk work), so its rules — concurrency, cancel, retry, resume after reload, conflict
 * choices, the quota check before any byte — are unit-tested without a browser.
 */

export type UploadStatus =
  | 'queued'
  | 'uploading'
  | 'waiting-network'
  | 'finishing'
  | 'conflict'
  | 'done'
  | 'failed'
  | 'cancelled'
  | 'skipped';

/** What to do when the name is taken: keep both (the server renames), replace (a new version), or skip. */
export type ConflictChoice = 'rename' | 'replace' | 'skip';

/** The part of a File the queue uses (a File satisfies it). */
export interface UploadSource {
  readonly name: string;
  readonly size: number;
  readonly lastModified: number;
  readonly type: string;
  slice(start?: number, end?: number): Blob;
}

export interface QueueItem {
  readonly id: string;
  readonly file: UploadSource;
  readonly parentId: string;
  /** "a/b/c.txt" for a file inside a dropped folder; empty for a single file. */
  readonly relativePath: string;
  readonly displayName: string;
  readonly size: number;
  readonly status: UploadStatus;
  /** Bytes the server has durably stored. */
  readonly sent: number;
  /** Bytes per second, smoothed. */
  readonly speed: number;
  /** Seconds left at the current speed; undefined when unknown. */
  readonly eta: number | undefined;
  readonly error: string | undefined;
  readonly onConflict: ConflictChoice | undefined;
  readonly uploadId: string | undefined;
  readonly nodeId: string | undefined;
  readonly attempts: number;
}

export interface UploadJob {
  readonly file: UploadSource;
  readonly parentId: string;
  readonly relativePath: string;
  /** Undefined: refuse on a name clash (the queue then asks). */
  readonly onConflict: ConflictChoice | undefined;
  /** An upload session saved earlier for the same file: continue it from its committed offset. */
  readonly resumeUploadId: string | undefined;
  readonly signal: AbortSignal;
  onUploadId(uploadId: string): void;
  onProgress(committed: number): void;
  onFinishing(): void;
}

export interface UploadResult {
  readonly nodeId: string;
}

/** Does the chunk work; throws errors with a `kind` (see classify) when it cannot. */
export type Uploader = (job: UploadJob) => Promise<UploadResult>;

export interface QuotaInfo {
  readonly used: number;
  readonly reserved: number;
  readonly limit: number;
}

/** Where unfinished upload ids are remembered across reloads (no credential: an id is useless without a session). */
export interface ResumeStore {
  get(key: string): string | undefined;
  set(key: string, uploadId: string): void;
  delete(key: string): void;
}

export interface QueueOptions {
  uploader: Uploader;
  resumeStore: ResumeStore;
  concurrency?: number;
  /** Current quota, asked before a file starts; a file larger than what is free fails without sending a byte. */
  quota?: () => Promise<QuotaInfo | undefined>;
  /** Cancels an upload session on the server (best effort). */
  abortUpload?: (uploadId: string) => Promise<void>;
  /** Turns an error into a message for people. */
  describe?: (error: unknown) => string;
  /** Waits between automatic retries after a network failure (ms), one entry per attempt. */
  retryDelays?: readonly number[];
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  now?: () => number;
  onDone?: (item: QueueItem) => void;
}

/** The key a saved upload is found by: the same file (name, size, modification time) into the same place. */
export function resumeKey(file: UploadSource, parentId: string, relativePath: string): string {
  return JSON.stringify([parentId, relativePath || file.name, file.size, file.lastModified]);
}

export function errorKind(error: unknown): string | undefined {
  if (typeof error === 'object' && error !== null && 'kind' in error) {
    const kind = (error as { kind: unknown }).kind;
    return typeof kind === 'string' ? kind : undefined;
  }
  if (error instanceof TypeError) return 'unavailable'; // fetch's "Failed to fetch"
  return undefined;
}

function isAbort(error: unknown): boolean {
  return (
    (error instanceof DOMException && error.name === 'AbortError') ||
    (typeof error === 'object' && error !== null && (error as { name?: unknown }).name === 'AbortError') ||
    errorKind(error) === 'cancelled'
  );
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = n / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

const defaultSleep = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      if (typeof window !== 'undefined') window.removeEventListener('online', done);
      resolve();
    }
    signal.addEventListener('abort', done);
    // Back online: try again at once rather than at the end of the back-off.
    if (typeof window !== 'undefined') window.addEventListener('online', done);
  });

let nextId = 1;

export class UploadQueue {
  private items: QueueItem[] = [];
  private readonly listeners = new Set<() => void>();
  private readonly controllers = new Map<string, AbortController>();
  private running = 0;
  private readonly opts: Required<Omit<QueueOptions, 'quota' | 'abortUpload' | 'onDone'>> &
    Pick<QueueOptions, 'quota' | 'abortUpload' | 'onDone'>;

  constructor(options: QueueOptions) {
    this.opts = {
      concurrency: 3,
      describe: (e) => (e instanceof Error ? e.message : String(e)),
      retryDelays: [1000, 2000, 4000, 8000, 10000, 10000, 10000, 10000, 10000, 10000],
      sleep: defaultSleep,
      now: () => Date.now(),
      ...options,
    };
  }

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  getSnapshot = (): readonly QueueItem[] => this.items;

  get activeCount(): number {
    return this.running;
  }

  add(entries: readonly { file: UploadSource; parentId: string; relativePath?: string }[]): QueueItem[] {
    const added = entries.map((e): QueueItem => {
      const relativePath = e.relativePath ?? '';
      return {
        id: `u${nextId++}`,
        file: e.file,
        parentId: e.parentId,
        relativePath,
        displayName: relativePath || e.file.name,
        size: e.file.size,
        status: 'queued',
        sent: 0,
        speed: 0,
        eta: undefined,
        error: undefined,
        onConflict: undefined,
        uploadId: undefined,
        nodeId: undefined,
        attempts: 0,
      };
    });
    this.items = [...this.items, ...added];
    this.emit();
    this.pump();
    return added;
  }

  /** Refuses an entry before it is queued (e.g. an unreadable file in a dropped folder), so it is listed as failed. */
  addFailed(displayName: string, parentId: string, reason: string): void {
    const empty: UploadSource = { name: displayName, size: 0, lastModified: 0, type: '', slice: () => new Blob() };
    const item: QueueItem = {
      id: `u${nextId++}`,
      file: empty,
      parentId,
      relativePath: displayName,
      displayName,
      size: 0,
      status: 'failed',
      sent: 0,
      speed: 0,
      eta: undefined,
      error: reason,
      onConflict: undefined,
      uploadId: undefined,
      nodeId: undefined,
      attempts: 0,
    };
    this.items = [...this.items, item];
    this.emit();
  }

  cancel(id: string): void {
    const item = this.find(id);
    if (!item || ['done', 'cancelled', 'skipped'].includes(item.status)) return;
    this.controllers.get(id)?.abort();
    if (item.uploadId) {
      this.opts.resumeStore.delete(resumeKey(item.file, item.parentId, item.relativePath));
      void this.opts.abortUpload?.(item.uploadId).catch(() => undefined);
    }
    this.update(id, { status: 'cancelled', speed: 0, eta: undefined });
    this.pump();
  }

  cancelAll(): void {
    for (const item of this.items) this.cancel(item.id);
  }

  retry(id: string): void {
    const item = this.find(id);
    if (!item || !['failed', 'cancelled'].includes(item.status) || item.file.size !== item.size) return;
    this.update(id, { status: 'queued', error: undefined, attempts: 0 });
    this.pump();
  }

  resolveConflict(id: string, choice: ConflictChoice): void {
    const item = this.find(id);
    if (!item || item.status !== 'conflict') return;
    if (choice === 'skip') {
      this.update(id, { status: 'skipped', error: undefined });
    } else {
      this.update(id, { status: 'queued', onConflict: choice, error: undefined });
    }
    this.pump();
  }

  clearFinished(): void {
    this.items = this.items.filter((i) => !['done', 'cancelled', 'skipped'].includes(i.status));
    this.emit();
  }

  private find(id: string): QueueItem | undefined {
    return this.items.find((i) => i.id === id);
  }

  private update(id: string, patch: Partial<QueueItem>): void {
    this.items = this.items.map((i) => (i.id === id ? { ...i, ...patch } : i));
    this.emit();
  }

  private emit(): void {
    for (const listener of this.listeners) listener();
  }

  private pump(): void {
    while (this.running < this.opts.concurrency) {
      const next = this.items.find((i) => i.status === 'queued');
      if (!next) return;
      this.running += 1;
      this.update(next.id, { status: 'uploading' });
      void this.run(next.id).finally(() => {
        this.running -= 1;
        this.pump();
      });
    }
  }

  private async run(id: string): Promise<void> {
    const controller = new AbortController();
    this.controllers.set(id, controller);
    try {
      await this.attempt(id, controller.signal);
    } finally {
      this.controllers.delete(id);
    }
  }

  private async attempt(id: string, signal: AbortSignal): Promise<void> {
    const start = this.find(id);
    if (!start) return;
    const key = resumeKey(start.file, start.parentId, start.relativePath);
    if (this.opts.quota && !start.uploadId && !this.opts.resumeStore.get(key)) {
      let quota: QuotaInfo | undefined;
      try {
        quota = await this.opts.quota();
      } catch {
        quota = undefined; // the server checks again when the upload is created
      }
      if (quota && quota.limit > 0) {
        const free = Math.max(0, quota.limit - quota.used - quota.reserved);
        if (start.size > free) {
          this.update(id, {
            status: 'failed',
            error:
              `Not enough space: this file needs ${formatBytes(start.size)} but only ${formatBytes(free)} of your ` +
              `${formatBytes(quota.limit)} is free (${formatBytes(quota.used)} used). Free space by emptying the ` +
              'trash or deleting old versions, or ask an admin for more.',
          });
          return;
        }
      }
    }
    let lastAt = this.opts.now();
    let lastSent = start.sent;
    for (;;) {
      if (signal.aborted) return;
      const item = this.find(id);
      if (!item || item.status === 'cancelled') return;
      try {
        const result = await this.opts.uploader({
          file: item.file,
          parentId: item.parentId,
          relativePath: item.relativePath,
          onConflict: item.onConflict,
          resumeUploadId: item.uploadId ?? this.opts.resumeStore.get(key),
          signal,
          onUploadId: (uploadId) => {
            this.opts.resumeStore.set(key, uploadId);
            this.update(id, { uploadId });
          },
          onProgress: (committed) => {
            if (signal.aborted) return;
            const now = this.opts.now();
            const dt = (now - lastAt) / 1000;
            const current = this.find(id);
            let speed = current?.speed ?? 0;
            if (dt > 0 && committed >= lastSent) {
              const instant = (committed - lastSent) / dt;
              speed = speed > 0 ? speed * 0.7 + instant * 0.3 : instant;
            }
            lastAt = now;
            lastSent = committed;
            const eta = speed > 0 ? (item.size - committed) / speed : undefined;
            this.update(id, { sent: committed, speed, eta, status: 'uploading', error: undefined });
          },
          onFinishing: () => {
            if (!signal.aborted) this.update(id, { status: 'finishing', speed: 0, eta: 0 });
          },
        });
        if (signal.aborted) return;
        this.opts.resumeStore.delete(key);
        this.update(id, {
          status: 'done',
          sent: item.size,
          nodeId: result.nodeId,
          speed: 0,
          eta: 0,
          error: undefined,
          uploadId: undefined,
        });
        const done = this.find(id);
        if (done) this.opts.onDone?.(done);
        return;
      } catch (error) {
        if (signal.aborted || isAbort(error)) return;
        const kind = errorKind(error);
        if (kind === 'conflict' && item.onConflict === undefined) {
          this.update(id, { status: 'conflict', error: this.opts.describe(error), speed: 0, eta: undefined });
          return;
        }
        if (kind === 'not_found' && (item.uploadId || this.opts.resumeStore.get(key))) {
          // The saved session expired or was finished elsewhere: start over once.
          this.opts.resumeStore.delete(key);
          this.update(id, { uploadId: undefined, sent: 0 });
          continue;
        }
        if (kind === 'unavailable') {
          const attempts = item.attempts + 1;
          const delay = this.opts.retryDelays[attempts - 1];
          if (delay !== undefined) {
            this.update(id, {
              status: 'waiting-network',
              attempts,
              speed: 0,
              eta: undefined,
              error: this.opts.describe(error),
            });
            await this.opts.sleep(delay, signal);
            continue;
          }
        }
        this.update(id, { status: 'failed', error: this.opts.describe(error), speed: 0, eta: undefined });
        return;
      }
    }
  }
}

/** Remembers unfinished uploads in localStorage (ids only: never a token). */
export class LocalResumeStore implements ResumeStore {
  private readonly storageKey = 'flowdock.pending-uploads';

  private read(): Record<string, string> {
    try {
      const raw = localStorage.getItem(this.storageKey);
      return raw ? (JSON.parse(raw) as Record<string, string>) : {};
    } catch {
      return {};
    }
  }

  private write(data: Record<string, string>): void {
    try {
      if (Object.keys(data).length === 0) localStorage.removeItem(this.storageKey);
      else localStorage.setItem(this.storageKey, JSON.stringify(data));
    } catch {
      // storage full or disabled: resuming after a reload is then not possible, uploading still is
    }
  }

  get(key: string): string | undefined {
    return this.read()[key];
  }

  set(key: string, uploadId: string): void {
    this.write({ ...this.read(), [key]: uploadId });
  }

  delete(key: string): void {
    const data = this.read();
    delete data[key];
    this.write(data);
  }

  clear(): void {
    this.write({});
  }
}

export class MemoryResumeStore implements ResumeStore {
  readonly data = new Map<string, string>();
  get(key: string): string | undefined {
    return this.data.get(key);
  }
  set(key: string, uploadId: string): void {
    this.data.set(key, uploadId);
  }
  delete(key: string): void {
    this.data.delete(key);
  }
}
