// Browser uploads: grpc-web cannot client-stream, so a file goes as unary WriteUploadChunk calls of the size the
// server advises, read slice by slice from the Blob (never the whole file in memory), resumable from the
// server's committed offset after a network failure or a reload.
import type { Client } from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  OnConflict,
  PublicLinkService,
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

/** A file dropped through an upload-only public link. */
export interface LinkUploadResult {
  uploadId: string;
  /** The file as stored, when the server tells (a file-drop answer leaves it out; unset while a large file is verified). */
  node: Node | undefined;
}

export type LinkUploadOptions = Pick<UploadOptions, "name" | "contentType" | "sha256" | "signal" | "onProgress" | "maxRetries">;

/** The calls an upload makes: the account's own (StorageService) or a visitor's through a link (PublicLinkService). */
export interface UploadCalls {
  create(request: MessageInitShape<typeof CreateUploadRequestSchema>, signal?: AbortSignal): Promise<Upload>;
  write(uploadId: string, offset: bigint, data: Uint8Array, signal?: AbortSignal): Promise<{ committedSize: bigint }>;
  /** Absent for link uploads (no GetLinkUpload): after a failure the chunk is sent again and a refusal names the offset. */
  get?(uploadId: string, signal?: AbortSignal): Promise<Upload>;
  finish(uploadId: string, signal?: AbortSignal): Promise<Upload>;
  abort(uploadId: string): Promise<void>;
}

export function storageCalls(storage: Client<typeof StorageService>): UploadCalls {
  return {
    create: (request, signal) => storage.createUpload(request, { signal }),
    write: (uploadId, offset, data, signal) => storage.writeUploadChunk({ uploadId, offset, data }, { signal }),
    get: (uploadId, signal) => storage.getUpload({ uploadId }, { signal }),
    finish: (uploadId, signal) => storage.finishUpload({ uploadId }, { signal }),
    abort: async (uploadId) => void (await storage.abortUpload({ uploadId })),
  };
}

/** Upload calls of a file-drop link: the token and link session are the credential, the link decides the folder. */
export function linkCalls(links: Client<typeof PublicLinkService>, token: string, session: string): UploadCalls {
  return {
    create: (r, signal) =>
      links.createLinkUpload(
        { token, session, name: r.name ?? "", size: r.size, sha256: r.sha256, contentType: r.contentType, content: r.content },
        { signal },
      ),
    write: (uploadId, offset, data, signal) =>
      links.writeLinkUploadChunk({ token, session, uploadId, offset, data }, { signal }),
    finish: (uploadId, signal) => links.finishLinkUpload({ token, session, uploadId }, { signal }),
    abort: () => Promise.resolve(), // no call for it: an abandoned drop expires on the server
  };
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
    private readonly calls: UploadCalls,
    private readonly options: UploaderOptions,
  ) {
    this.inlineLimit = options.inlineUploadBytes;
  }

  async upload(file: Blob, opts: UploadOptions = {}): Promise<LinkUploadResult> {
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
        const upload = await this.calls.create({ ...request, content }, opts.signal);
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
      upload = await this.calls.create(request, opts.signal);
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
  async resume(uploadId: string, file: Blob, opts: UploadOptions = {}): Promise<LinkUploadResult> {
    let upload: Upload;
    if (!this.calls.get) throw new FlowDockError({ kind: "invalid", field: "uploadId", message: "uploadId: this upload cannot be resumed" });
    try {
      upload = await this.calls.get(uploadId, opts.signal);
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
    await this.calls.abort(uploadId);
  }

  private async send(upload: Upload, file: Blob, opts: UploadOptions): Promise<LinkUploadResult> {
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
        if (sync && this.calls.get) {
          current = await this.calls.get(id, signal);
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
          const call = this.calls.write(id, BigInt(committed), data, signal);
          // The next slice is read from disk while this chunk travels (still one chunk request at a time).
          if (piece.end < total) ahead = readSlice(file, piece.end, chunk);
          const resp = await call;
          committed = Number(resp.committedSize);
          failures = 0;
          report(opts, id, committed, total, started, startCommitted);
        }
        return await this.settle(await this.calls.finish(id, signal), signal);
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
  private async settle(upload: Upload, signal: AbortSignal | undefined): Promise<LinkUploadResult> {
    let delay = this.options.finishPollMs;
    for (;;) {
      switch (upload.state) {
        case UploadState.COMPLETED:
          // A link upload's answer leaves the node out (a visitor learns nothing of the folder); withNode checks
          // that an account's own upload has it.
          return { uploadId: upload.uploadId, node: upload.node };
        case UploadState.FAILED:
          throw uploadFailure(upload.failure);
        case UploadState.FINISHING:
          await sleep(delay, signal);
          delay = Math.min(delay * 2, 5_000);
          if (!this.calls.get) return { uploadId: upload.uploadId, node: undefined }; // verified in the background
          upload = await this.calls.get(upload.uploadId, signal);
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

/** An upload of the account's own: it always ends with the node (GetUpload waits out FINISHING). */
export function withNode(result: LinkUploadResult): UploadResult {
  if (!result.node) throw new FlowDockError({ kind: "internal", message: "completed upload without a node" });
  return { uploadId: result.uploadId, node: result.node };
}
