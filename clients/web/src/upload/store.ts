import { useSyncExternalStore } from 'react';
import { api } from '../api';
import { describeError } from '../api/errors';
import { LocalResumeStore, UploadQueue, type QueueItem } from './queue';

const finished = new Set<(item: QueueItem) => void>();

/** The app's one upload queue: it outlives page changes, so uploads continue while the person browses. */
export const uploads = new UploadQueue({
  uploader: (job) => api.upload(job),
  abortUpload: (id) => api.abortUpload(id),
  resumeStore: new LocalResumeStore(),
  concurrency: 3,
  quota: () => api.quota(),
  describe: describeError,
  onDone: (item) => {
    for (const listener of finished) listener(item);
  },
});

export function onUploadDone(listener: (item: QueueItem) => void): () => void {
  finished.add(listener);
  return () => finished.delete(listener);
}

export function useUploads(): readonly QueueItem[] {
  return useSyncExternalStore(uploads.subscribe, uploads.getSnapshot);
}
