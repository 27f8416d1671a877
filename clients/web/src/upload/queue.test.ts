import { describe, expect, it } from 'vitest';
import {
  MemoryResumeStore,
  UploadQueue,
  resumeKey,
  type QueueItem,
  type UploadJob,
  type UploadSource,
} from './queue';

function file(name: string, size: number, lastModified = 1000): UploadSource {
  return { name, size, lastModified, type: 'application/octet-stream', slice: () => new Blob() };
}

class KindError extends Error {
  constructor(
    readonly kind: string,
    message = kind,
  ) {
    super(message);
  }
}

/** An uploader whose jobs the test finishes by hand. */
function manualUploader() {
  const jobs: { job: UploadJob; resolve: (nodeId: string) => void; reject: (e: unknown) => void }[] = [];
  const uploader = (job: UploadJob) =>
    new Promise<{ nodeId: string }>((resolve, reject) => {
      jobs.push({ job, resolve: (nodeId) => resolve({ nodeId }), reject });
      job.signal.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError')));
    });
  return { jobs, uploader };
}

const tick = () => new Promise((r) => setTimeout(r, 0));

function byName(items: readonly QueueItem[], name: string): QueueItem {
  const found = items.find((i) => i.displayName === name);
  if (!found) throw new Error(`no item ${name}`);
  return found;
}

describe('UploadQueue', () => {
  it('runs at most `concurrency` uploads at once and starts the next when one ends', async () => {
    const { jobs, uploader } = manualUploader();
    const q = new UploadQueue({ uploader, resumeStore: new MemoryResumeStore(), concurrency: 3 });
    q.add(['a', 'b', 'c', 'd', 'e'].map((n) => ({ file: file(n, 10), parentId: 'root' })));
    await tick();
    expect(jobs.map((j) => j.job.file.name)).toEqual(['a', 'b', 'c']);
    expect(q.getSnapshot().filter((i) => i.status === 'uploading')).toHaveLength(3);
    jobs[1].resolve('n-b');
    await tick();
    await tick();
    expect(jobs.map((j) => j.job.file.name)).toEqual(['a', 'b', 'c', 'd']);
    expect(byName(q.getSnapshot(), 'b').status).toBe('done');
    expect(byName(q.getSnapshot(), 'e').status).toBe('queued');
  });

  it('cancel aborts the running job, aborts the server session and frees its slot', async () => {
    const { jobs, uploader } = manualUploader();
    const aborted: string[] = [];
    const store = new MemoryResumeStore();
    const q = new UploadQueue({
      uploader,
      resumeStore: store,
      concurrency: 1,
      abortUpload: async (id) => {
        aborted.push(id);
      },
    });
    const [a] = q.add([
      { file: file('a', 10), parentId: 'root' },
      { file: file('b', 10), parentId: 'root' },
    ]);
    await tick();
    jobs[0].job.onUploadId('up-a');
    expect(store.data.size).toBe(1);
    q.cancel(a.id);
    await tick();
    await tick();
    expect(jobs[0].job.signal.aborted).toBe(true);
    expect(aborted).toEqual(['up-a']);
    expect(store.data.size).toBe(0);
    expect(byName(q.getSnapshot(), 'a').status).toBe('cancelled');
    expect(jobs.map((j) => j.job.file.name)).toEqual(['a', 'b']);
  });

  it('retry runs a failed upload again, continuing its saved session', async () => {
    const { jobs, uploader } = manualUploader();
    const q = new UploadQueue({ uploader, resumeStore: new MemoryResumeStore(), describe: () => 'boom' });
    const [a] = q.add([{ file: file('a', 10), parentId: 'root' }]);
    await tick();
    jobs[0].job.onUploadId('up-a');
    jobs[0].reject(new KindError('internal'));
    await tick();
    expect(q.getSnapshot()[0]).toMatchObject({ status: 'failed', error: 'boom' });
    q.retry(a.id);
    await tick();
    expect(jobs).toHaveLength(2);
    expect(jobs[1].job.resumeUploadId).toBe('up-a');
    jobs[1].resolve('n-a');
    await tick();
    expect(q.getSnapshot()[0].status).toBe('done');
  });

  it('retries on its own after a network failure, from the same session', async () => {
    const { jobs, uploader } = manualUploader();
    const slept: number[] = [];
    const q = new UploadQueue({
      uploader,
      resumeStore: new MemoryResumeStore(),
      retryDelays: [5, 6],
      sleep: async (ms) => {
        slept.push(ms);
      },
    });
    q.add([{ file: file('a', 10), parentId: 'root' }]);
    await tick();
    jobs[0].job.onUploadId('up-a');
    jobs[0].job.onProgress(4);
    jobs[0].reject(new KindError('unavailable'));
    await tick();
    await tick();
    expect(slept).toEqual([5]);
    expect(jobs[1].job.resumeUploadId).toBe('up-a');
    jobs[1].reject(new KindError('unavailable'));
    await tick();
    await tick();
    jobs[2].reject(new KindError('unavailable'));
    await tick();
    await tick();
    expect(q.getSnapshot()[0].status).toBe('failed'); // out of retries: the person can press Retry
  });

  it('after a reload, the same file (name, size, mtime) into the same folder continues its saved upload', async () => {
    const store = new MemoryResumeStore();
    const saved = file('big.bin', 5000, 42);
    store.set(resumeKey(saved, 'f1', ''), 'up-old');
    const { jobs, uploader } = manualUploader();
    const q = new UploadQueue({ uploader, resumeStore: store });
    q.add([
      { file: file('big.bin', 5000, 42), parentId: 'f1' },
      { file: file('big.bin', 5000, 43), parentId: 'f1' }, // touched since: a different file
      { file: file('big.bin', 5001, 42), parentId: 'f1' }, // other size
      { file: file('big.bin', 5000, 42), parentId: 'f2' }, // other folder
    ]);
    await tick();
    expect(jobs[0].job.resumeUploadId).toBe('up-old');
    expect(jobs.slice(1).map((j) => j.job.resumeUploadId)).toEqual([undefined, undefined]);
    jobs[0].resolve('n1');
    await tick();
    expect(store.data.size).toBe(0);
  });

  it('a saved session the server no longer knows starts over instead of failing', async () => {
    const store = new MemoryResumeStore();
    const f = file('x', 10);
    store.set(resumeKey(f, 'root', ''), 'up-gone');
    const { jobs, uploader } = manualUploader();
    const q = new UploadQueue({ uploader, resumeStore: store });
    q.add([{ file: f, parentId: 'root' }]);
    await tick();
    jobs[0].reject(new KindError('not_found'));
    await tick();
    await tick();
    expect(jobs[1].job.resumeUploadId).toBeUndefined();
  });

  it('a name clash asks, and each answer does what it says', async () => {
    const { jobs, uploader } = manualUploader();
    const q = new UploadQueue({ uploader, resumeStore: new MemoryResumeStore() });
    const items = q.add(['a', 'b', 'c'].map((n) => ({ file: file(n, 1), parentId: 'root' })));
    await tick();
    for (const j of jobs) j.reject(new KindError('conflict'));
    await tick();
    expect(q.getSnapshot().map((i) => i.status)).toEqual(['conflict', 'conflict', 'conflict']);
    q.resolveConflict(items[0].id, 'rename');
    q.resolveConflict(items[1].id, 'replace');
    q.resolveConflict(items[2].id, 'skip');
    await tick();
    expect(jobs.slice(3).map((j) => [j.job.file.name, j.job.onConflict])).toEqual([
      ['a', 'rename'],
      ['b', 'replace'],
    ]);
    expect(q.getSnapshot()[2].status).toBe('skipped');
  });

  it('a file larger than the free quota fails before the uploader is called, naming the numbers', async () => {
    const { jobs, uploader } = manualUploader();
    const q = new UploadQueue({
      uploader,
      resumeStore: new MemoryResumeStore(),
      quota: async () => ({ used: 900, reserved: 50, limit: 1000 }),
    });
    q.add([
      { file: file('big', 51), parentId: 'root' },
      { file: file('fits', 50), parentId: 'root' },
    ]);
    await tick();
    await tick();
    const big = byName(q.getSnapshot(), 'big');
    expect(big.status).toBe('failed');
    expect(big.error).toMatch(/needs 51 B but only 50 B of your 1000 B is free/);
    expect(jobs.map((j) => j.job.file.name)).toEqual(['fits']);
  });

  it('tracks progress with speed and ETA', async () => {
    let now = 0;
    const { jobs, uploader } = manualUploader();
    const q = new UploadQueue({ uploader, resumeStore: new MemoryResumeStore(), now: () => now });
    q.add([{ file: file('a', 3000), parentId: 'root' }]);
    await tick();
    now = 1000;
    jobs[0].job.onProgress(1000);
    const item = q.getSnapshot()[0];
    expect(item.sent).toBe(1000);
    expect(item.speed).toBe(1000);
    expect(item.eta).toBe(2);
  });

  it('entries refused before upload are listed as failed with the reason, the rest still run', async () => {
    const { jobs, uploader } = manualUploader();
    const q = new UploadQueue({ uploader, resumeStore: new MemoryResumeStore() });
    q.addFailed('dir/bad\u0001name', 'root', 'name contains a control character');
    q.add([{ file: file('ok', 1), parentId: 'root', relativePath: 'dir/ok' }]);
    await tick();
    expect(q.getSnapshot()[0]).toMatchObject({ status: 'failed', error: 'name contains a control character' });
    expect(jobs.map((j) => j.job.relativePath)).toEqual(['dir/ok']);
  });
});
