// Browser uploads: grpc-web cannot client-stream, so a file goes as unary WriteUploadChunk calls of the size the
// server advises, read slice by slice from the Blob (never the whole file in memory), resumable from the
// server's committed offset after a network failure or a reload.
import type { Client } from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  OnConflict,
  StorageService,
  UploadState,
  type CreateUploadRequestSchema,
  type Node,
  type Upload,
} from "./gen/flowdock/storage/v1/storage_pb";
import { FlowDockError, toFlowDockError, uploadFailure } from "./errors";

export type ConflictPolicy = "fail" | "rename" | "new_version";

/** What the app stores (e.g. in localStorage) to resume after a reload: no credential, only ids and file facts. */
export interface UploadRecord {
  uploadId: string;
  name: string;
  size: number;
  lastModified: number;
  parentId: string;
  relativePath?: string;
}

export interface UploadProgress {
  uploadId: string;
  /** Bytes the server has durably stored. */
  committedBytes: number;
  totalBytes: number;
  /** Average over this run of the upload (since it started or resumed). */
  bytesPerSecond: number;
}

export interface UploadOptions {
  /** Target folder id; "root" (the default) is the caller's root. */
  parentId?: string;
  /** File name; defaults to the File's name. */
  name?: string;
  /** Instead of name: "photos/2024/a.jpg" below parentId; missing folders are created. */
  relativePath?: string;
  onConflict?: ConflictPolicy;
  contentType?: string;
  /** Hex SHA-256 of the whole content, checked by the server at finish. */
  sha256?: string;
  signal?: AbortSignal;
  onProgress?: (progress: UploadProgress) => void;
  /** Called once the server opened a resumable upload: persist the record to resume after a reload. */
  onCreated?: (record: UploadRecord) => void;
  /** Consecutive failures (network, server unavailable) tolerated before giving up (default 8). */
  maxRetries?: number;
}

export interface UploadResult {
  uploadId: string;
  node: Node;
}

export interface UploaderOptions {
  /** Files up to this size go in one CreateUpload call with their content (0 turns it off). */
  inlineUploadBytes: number;
  /** Backoff: first delay and cap, in ms. */
  retryDelayMs: number;
  maxRetryDelayMs: number;
  /** Poll interval while the server verifies a large upload (state FINISHING). */
  finishPollMs: number;
}

const DEFAULT_CHUNK = 1024 * 1024;
const INLINE_LIMIT = /storage_inline_upload_bytes \((\d+)\)/;
const CONFLICT: Record<ConflictPolicy, OnConflict> = {
  fail: OnConflict.FAIL,
  rename: OnConflict.RENAME,
  new_version: OnConflict.NEW_VERSION,
};

function cancelled(signal: AbortSignal | undefined): FlowDockError {
  return new FlowDockError({ kind: "cancelled", message: "upload cancelled", cause: signal?.reason });
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(cancelled(signal));
    const onAbort = () => {
      clearTimeout(timer);
      reject(cancelled(signal));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** The chunk length to send: the server's advice, never above its maximum. */
export function chunkLength(upload: Pick<Upload, "chunkSize" | "maxChunkSize">): number {
  const advised = Number(upload.chunkSize) > 0 ? Number(upload.chunkSize) : DEFAULT_CHUNK;
  const max = Number(upload.maxChunkSize);
  return max > 0 ? Math.min(advised, max) : advised;
}

export class Uploader {
  private inlineLimit: number;

  constructor(
    private readonly storage: Client<typeof StorageService>,
    private readonly options: UploaderOptions,
  ) {
    this.inlineLimit = options.inlineUploadBytes;
  }

  async upload(file: Blob, opts: UploadOptions = {}): Promise<UploadResult> {
    const name = opts.name ?? (file as Partial<File>).name ?? "";
    if (!name && !opts.relativePath) {
      throw new FlowDockError({ kind: "invalid", field: "name", message: "name: a Blob needs a name (or relativePath)" });
    }
    if (opts.signal?.aborted) throw cancelled(opts.signal);
    const parentId = opts.parentId ?? "root";
    const request: MessageInitShape<typeof CreateUploadRequestSchema> = {
      parentId,
      name: opts.relativePath ? "" : name,
      relativePath: opts.relativePath ?? "",
      size: BigInt(file.size),
      sha256: opts.sha256 ?? "",
      contentType: opts.contentType ?? (file.type || ""),
      onConflict: CONFLICT[opts.onConflict ?? "fail"],
    };
    // proto3 bytes: empty content is "no content", so a 0-byte file takes the resumable path (create + finish).
    if (file.size > 0 && file.size <= this.inlineLimit) {
      const started = Date.now();
      try {
        const content = new Uint8Array(await file.arrayBuffer());
        const upload = await this.storage.createUpload({ ...request, content }, { signal: opts.signal });
        report(opts, upload.uploadId, file.size, file.size, started, 0);
        return await this.settle(upload, opts.signal);
      } catch (e) {
        const err = toFlowDockError(e);
        if (opts.signal?.aborted) throw cancelled(opts.signal);
        // The server's inline limit is lower than ours: learn it and send this file in chunks.
        if (err.kind !== "too_large" || err.limit !== "storage_inline_upload_bytes") throw err;
        const m = INLINE_LIMIT.exec(err.message);
        this.inlineLimit = m ? Number(m[1]) : 0;
      }
    }
    let upload: Upload;
    try {
      upload = await this.storage.createUpload(request, { signal: opts.signal });
    } catch (e) {
      throw opts.signal?.aborted ? cancelled(opts.signal) : toFlowDockError(e);
    }
    if (upload.state === UploadState.OPEN) {
      opts.onCreated?.({
        uploadId: upload.uploadId,
        name: upload.name,
        size: file.size,
        lastModified: (file as Partial<File>).lastModified ?? 0,
        parentId,
        ...(opts.relativePath ? { relativePath: opts.relativePath } : {}),
      });
    }
    return this.send(upload, file, opts);
  }

  /** Continue an upload (after a reload) from what the server has stored; `file` must be the same file. */
  async resume(uploadId: string, file: Blob, opts: UploadOptions = {}): Promise<UploadResult> {
    let upload: Upload;
    try {
      upload = await this.storage.getUpload({ uploadId }, { signal: opts.signal });
    } catch (e) {
      throw opts.signal?.aborted ? cancelled(opts.signal) : toFlowDockError(e);
    }
    if (Number(upload.size) !== file.size) {
      throw new FlowDockError({
        kind: "invalid",
        field: "file",
        message: `file: this file has ${file.size} bytes; upload ${uploadId} expects ${upload.size} (pick the same file)`,
      });
    }
    return this.send(upload, file, opts);
  }

  /** Drop an upload and its stored bytes (frees the quota it reserved). */
  async abort(uploadId: string): Promise<void> {
    await this.storage.abortUpload({ uploadId });
  }

  private async send(upload: Upload, file: Blob, opts: UploadOptions): Promise<UploadResult> {
    const { signal } = opts;
    const id = upload.uploadId;
    const total = file.size;
    const chunk = chunkLength(upload);
    const maxRetries = opts.maxRetries ?? 8;
    const started = Date.now();
    let committed = Number(upload.committedSize);
    const startCommitted = committed;
    let failures = 0;
    let sync = false;
    let current: Upload | undefined = upload;
    let ahead: Slice | undefined; // the next chunk, being read while the one before is sent
    for (;;) {
      if (signal?.aborted) throw cancelled(signal);
      try {
        if (sync) {
          current = await this.storage.getUpload({ uploadId: id }, { signal });
          committed = Number(current.committedSize);
          sync = false;
        }
        if (current && current.state !== UploadState.OPEN) return await this.settle(current, signal);
        current = undefined;
        report(opts, id, committed, total, started, startCommitted);
        while (committed < total) {
          const piece = ahead?.start === committed ? ahead : readSlice(file, committed, chunk);
          ahead = undefined;
          const data = await piece.data;
          const call = this.storage.writeUploadChunk({ uploadId: id, offset: BigInt(committed), data }, { signal });
          // The next slice is read from disk while this chunk travels (still one chunk request at a time).
          if (piece.end < total) ahead = readSlice(file, piece.end, chunk);
          const resp = await call;
          committed = Number(resp.committedSize);
          failures = 0;
          report(opts, id, committed, total, started, startCommitted);
        }
        return await this.settle(await this.storage.finishUpload({ uploadId: id }, { signal }), signal);
      } catch (e) {
        const err = toFlowDockError(e);
        if (signal?.aborted || err.kind === "cancelled") throw cancelled(signal);
        if (++failures > maxRetries) throw err;
        const at = err.details.metadata["committed_size"];
        const reason = err.details.reason;
        if ((reason === "UPLOAD_OFFSET_MISMATCH" || reason === "UPLOAD_INCOMPLETE") && at !== undefined) {
          committed = Number(at); // the server says where it stands: continue from there
          continue;
        }
        if (err.kind !== "unavailable") throw err;
        const delay = Math.min(this.options.retryDelayMs * 2 ** (failures - 1), this.options.maxRetryDelayMs);
        await sleep(delay * (0.75 + Math.random() * 0.5), signal);
        sync = true; // ask the server what it durably stored before sending more
      }
    }
  }

  /** An upload past OPEN: wait out FINISHING, then the node or the refusal. */
  private async settle(upload: Upload, signal: AbortSignal | undefined): Promise<UploadResult> {
    let delay = this.options.finishPollMs;
    for (;;) {
      switch (upload.state) {
        case UploadState.COMPLETED:
          if (!upload.node) throw new FlowDockError({ kind: "internal", message: "completed upload without a node" });
          return { uploadId: upload.uploadId, node: upload.node };
        case UploadState.FAILED:
          throw uploadFailure(upload.failure);
        case UploadState.FINISHING:
          await sleep(delay, signal);
          delay = Math.min(delay * 2, 5_000);
          upload = await this.storage.getUpload({ uploadId: upload.uploadId }, { signal });
          break;
        default:
          throw new FlowDockError({
            kind: "unavailable",
            message: upload.failure || "the upload could not be finished; retry",
          });
      }
    }
  }
}

/** A chunk of the file being read: [start, end) and its bytes once read. */
interface Slice {
  start: number;
  end: number;
  data: Promise<Uint8Array<ArrayBuffer>>;
}

function readSlice(file: Blob, start: number, chunk: number): Slice {
  const end = Math.min(start + chunk, file.size);
  const data = file
    .slice(start, end)
    .arrayBuffer()
    .then((b) => new Uint8Array(b));
  data.catch(() => undefined); // a read-ahead left unused (the call before it failed) must not be an unhandled rejection
  return { start, end, data };
}

function report(
  opts: UploadOptions,
  uploadId: string,
  committed: number,
  total: number,
  started: number,
  startCommitted: number,
): void {
  if (!opts.onProgress) return;
  const seconds = (Date.now() - started) / 1000;
  const bytesPerSecond = seconds > 0 ? (committed - startCommitted) / seconds : 0;
  opts.onProgress({ uploadId, committedBytes: committed, totalBytes: total, bytesPerSecond });
}
