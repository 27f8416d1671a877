// One error type for everything the SDK throws: the app switches on `kind`, never on gRPC codes or messages.
import { Code, ConnectError } from "@connectrpc/connect";
import {
  BadRequestSchema,
  ErrorInfoSchema,
  QuotaFailureSchema,
  RetryInfoSchema,
} from "./gen/google/rpc/error_details_pb";

export type ErrorKind =
  | "unauthenticated"
  | "permission"
  | "not_found"
  | "conflict"
  | "invalid"
  | "quota"
  | "too_large"
  | "infected"
  | "rate_limited"
  | "unavailable"
  | "precondition"
  | "cancelled"
  | "internal";

/** What the server said beyond the message (google.rpc details from grpc-status-details-bin). */
export interface ErrorDetails {
  /** BadRequest field violations (INVALID_ARGUMENT names the field). */
  fieldViolations: { field: string; description: string }[];
  /** ErrorInfo (FAILED_PRECONDITION with a reason, e.g. UPLOAD_OFFSET_MISMATCH). */
  reason?: string;
  metadata: Record<string, string>;
  /** QuotaFailure subjects: the names of the limits hit (e.g. storage_quota_bytes). */
  limits: string[];
  /** RetryInfo, in seconds. */
  retryAfterSeconds?: number;
}

export interface FlowDockErrorInit {
  kind: ErrorKind;
  message: string;
  /** The gRPC status code (numeric, as @connectrpc/connect's Code), when a server answered. */
  code?: Code;
  details?: Partial<ErrorDetails>;
  field?: string;
  limit?: string;
  usedBytes?: number;
  limitBytes?: number;
  signature?: string;
  retryAfterSeconds?: number;
  cause?: unknown;
}

export class FlowDockError extends Error {
  override readonly name = "FlowDockError";
  readonly kind: ErrorKind;
  /** gRPC status code (see Code in @connectrpc/connect); Code.Unavailable for network failures. */
  readonly code: Code | undefined;
  readonly details: ErrorDetails;
  /** invalid: the request field at fault (e.g. "name"). */
  readonly field: string | undefined;
  /** quota / too_large / rate_limited: the server's name for the limit (e.g. storage_quota_bytes). */
  readonly limit: string | undefined;
  /** quota: bytes in use and the quota, when the server's message states them. */
  readonly usedBytes: number | undefined;
  readonly limitBytes: number | undefined;
  /** infected: the virus scanner's signature name. */
  readonly signature: string | undefined;
  /** rate_limited (and any error with RetryInfo): seconds to wait before retrying. */
  readonly retryAfterSeconds: number | undefined;

  constructor(init: FlowDockErrorInit) {
    super(init.message, init.cause === undefined ? undefined : { cause: init.cause });
    this.kind = init.kind;
    this.code = init.code;
    this.details = { fieldViolations: [], metadata: {}, limits: [], ...init.details };
    this.field = init.field;
    this.limit = init.limit;
    this.usedBytes = init.usedBytes;
    this.limitBytes = init.limitBytes;
    this.signature = init.signature;
    this.retryAfterSeconds = init.retryAfterSeconds ?? this.details.retryAfterSeconds;
  }
}

const NETWORK_MESSAGE = "cannot reach the FlowDock server (network down, or the gateway is not running); retry shortly";

function parseDetails(err: ConnectError): ErrorDetails {
  const details: ErrorDetails = { fieldViolations: [], metadata: {}, limits: [] };
  for (const bad of err.findDetails(BadRequestSchema)) {
    for (const v of bad.fieldViolations) details.fieldViolations.push({ field: v.field, description: v.description });
  }
  for (const info of err.findDetails(ErrorInfoSchema)) {
    details.reason ??= info.reason;
    Object.assign(details.metadata, info.metadata);
  }
  for (const q of err.findDetails(QuotaFailureSchema)) {
    for (const v of q.violations) details.limits.push(v.subject);
  }
  for (const r of err.findDetails(RetryInfoSchema)) {
    if (r.retryDelay) details.retryAfterSeconds = Number(r.retryDelay.seconds) + r.retryDelay.nanos / 1e9;
  }
  return details;
}

// storage_svc: "storage quota of {limit} bytes exceeded: {used} used, {reserved} reserved by open uploads, ..."
const QUOTA_MESSAGE = /quota of (\d+) bytes exceeded: (\d+) used/;
// Size limits are named "..._bytes" (storage_max_file_bytes, storage_max_chunk_bytes, storage_inline_upload_bytes).
const SIZE_LIMIT = /_bytes$/;

function isNetworkFailure(err: unknown): boolean {
  // fetch() rejects with a TypeError when the server cannot be reached; Connect wraps it as Code.Unknown.
  if (err instanceof TypeError) return true;
  return err instanceof ConnectError && err.code === Code.Unknown && err.cause instanceof TypeError;
}

/** Map anything a call threw to a FlowDockError (already mapped errors pass through). */
export function toFlowDockError(err: unknown): FlowDockError {
  if (err instanceof FlowDockError) return err;
  // Connect wraps what an interceptor throws (a refused refresh) in a ConnectError: unwrap ours.
  if (err instanceof ConnectError && err.cause instanceof FlowDockError) return err.cause;
  if (isNetworkFailure(err)) {
    return new FlowDockError({ kind: "unavailable", message: NETWORK_MESSAGE, code: Code.Unavailable, cause: err });
  }
  if (err instanceof Error && err.name === "AbortError") {
    return new FlowDockError({ kind: "cancelled", message: "cancelled", code: Code.Canceled, cause: err });
  }
  const ce = ConnectError.from(err);
  const details = parseDetails(ce);
  const message = ce.rawMessage || Code[ce.code] || "error";
  const base = { message, code: ce.code, details, cause: err };
  switch (ce.code) {
    case Code.Unauthenticated:
      return new FlowDockError({ ...base, kind: "unauthenticated" });
    case Code.PermissionDenied:
      return new FlowDockError({ ...base, kind: "permission" });
    case Code.NotFound:
      return new FlowDockError({ ...base, kind: "not_found" });
    case Code.AlreadyExists:
    case Code.Aborted:
      return new FlowDockError({ ...base, kind: "conflict" });
    case Code.InvalidArgument:
    case Code.OutOfRange:
      return new FlowDockError({ ...base, kind: "invalid", field: details.fieldViolations[0]?.field });
    case Code.ResourceExhausted:
      return resourceExhausted(base, details);
    case Code.FailedPrecondition:
      if (details.reason === "SCAN_LIMIT_EXCEEDED" || details.metadata["limit_bytes"] !== undefined) {
        const limitBytes = Number(details.metadata["limit_bytes"]);
        return new FlowDockError({
          ...base,
          kind: "too_large",
          limit: "storage_clamd_stream_max_bytes",
          limitBytes: Number.isFinite(limitBytes) ? limitBytes : undefined,
        });
      }
      return new FlowDockError({ ...base, kind: "precondition" });
    case Code.Unavailable:
    case Code.DeadlineExceeded:
      return new FlowDockError({ ...base, kind: "unavailable" });
    case Code.Canceled:
      return new FlowDockError({ ...base, kind: "cancelled" });
    default:
      return new FlowDockError({ ...base, kind: "internal" });
  }
}

function resourceExhausted(
  base: { message: string; code: Code; details: ErrorDetails; cause: unknown },
  details: ErrorDetails,
): FlowDockError {
  const limit = details.limits[0];
  if (details.reason === "DISK_FULL" || limit === "data_disk") {
    // The server's own disk is full (REST 507): not the user's quota; it works again once an operator frees space.
    return new FlowDockError({ ...base, kind: "unavailable", limit });
  }
  if (limit === "storage_quota_bytes") {
    const m = QUOTA_MESSAGE.exec(base.message);
    return new FlowDockError({
      ...base,
      kind: "quota",
      limit,
      limitBytes: m ? Number(m[1]) : undefined,
      usedBytes: m ? Number(m[2]) : undefined,
    });
  }
  if (limit !== undefined && SIZE_LIMIT.test(limit)) {
    return new FlowDockError({ ...base, kind: "too_large", limit });
  }
  if (details.retryAfterSeconds !== undefined || limit === undefined || limit.startsWith("auth.") || limit.includes("failures")) {
    return new FlowDockError({ ...base, kind: "rate_limited", limit });
  }
  return new FlowDockError({ ...base, kind: "quota", limit });
}

// storage_svc writes why an upload FAILED into Upload.failure (it is an upload state, not a status).
const VIRUS = /^virus found: (.+?); /;

/** The error for an upload the server refused at finish (state FAILED, `failure` says why). */
export function uploadFailure(failure: string): FlowDockError {
  const virus = VIRUS.exec(failure);
  if (virus) {
    return new FlowDockError({ kind: "infected", message: failure, signature: virus[1] });
  }
  if (failure.includes("virus scanner")) {
    return new FlowDockError({ kind: "too_large", message: failure, limit: "storage_clamd_stream_max_bytes" });
  }
  if (failure.includes("SHA-256")) {
    return new FlowDockError({ kind: "invalid", message: failure, field: "sha256" });
  }
  if (failure.includes("appeared in the folder")) {
    return new FlowDockError({ kind: "conflict", message: failure });
  }
  return new FlowDockError({ kind: "precondition", message: failure || "the upload failed" });
}
