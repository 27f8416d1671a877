// Errors decoded from real grpc-web responses (the bytes Envoy sends): grpc-status-details-bin holds a
// google.rpc.Status with the details flowdock_kernel/grpc_errors.py packs.
import { create, toBinary, type DescMessage, type MessageInitShape } from "@bufbuild/protobuf";
import { anyPack, DurationSchema } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { createClient, FlowDockError } from "./index";
import { StatusSchema } from "./gen/google/rpc/status_pb";
import {
  BadRequestSchema,
  ErrorInfoSchema,
  QuotaFailureSchema,
  RetryInfoSchema,
} from "./gen/google/rpc/error_details_pb";

type Detail = [DescMessage, MessageInitShape<DescMessage>];

function detail<D extends DescMessage>(desc: D, init: MessageInitShape<D>): Detail {
  return [desc, init as MessageInitShape<DescMessage>];
}

/** A grpc-web error response as Envoy sends it: status, message and details in the trailer frame. */
function grpcWebError(code: Code, message: string, details: Detail[] = []): Response {
  const status = create(StatusSchema, {
    code,
    message,
    details: details.map(([desc, init]) => anyPack(desc, create(desc, init))),
  });
  const bin = Buffer.from(toBinary(StatusSchema, status)).toString("base64").replace(/=+$/, "");
  const trailer = new TextEncoder().encode(
    `grpc-status: ${code}\r\ngrpc-message: ${encodeURIComponent(message)}\r\ngrpc-status-details-bin: ${bin}\r\n`,
  );
  const frame = new Uint8Array(5 + trailer.length);
  frame[0] = 0x80;
  new DataView(frame.buffer).setUint32(1, trailer.length);
  frame.set(trailer, 5);
  return new Response(frame, { status: 200, headers: { "content-type": "application/grpc-web+proto" } });
}

async function errorFrom(response: Response | (() => Promise<Response>)): Promise<FlowDockError> {
  const fetch = typeof response === "function" ? response : async () => response;
  const client = createClient({ baseUrl: "https://files.example", fetch, cookieSession: false });
  const err = await client.storage.getQuota({}).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(FlowDockError);
  return err as FlowDockError;
}

describe("error mapping", () => {
  it("INVALID_ARGUMENT names the field from BadRequest", async () => {
    const err = await errorFrom(
      grpcWebError(Code.InvalidArgument, "name: must not contain '/'", [
        detail(BadRequestSchema, { fieldViolations: [{ field: "name", description: "must not contain '/'" }] }),
      ]),
    );
    expect(err.kind).toBe("invalid");
    expect(err.field).toBe("name");
    expect(err.message).toBe("name: must not contain '/'");
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.details.fieldViolations).toEqual([{ field: "name", description: "must not contain '/'" }]);
  });

  it("the storage quota: kind quota with used and limit bytes", async () => {
    const message =
      "storage quota of 1000 bytes exceeded: 900 used, 50 reserved by open uploads, 200 more needed; free space " +
      "(empty the trash, delete old versions) or ask an admin for a larger quota";
    const err = await errorFrom(
      grpcWebError(Code.ResourceExhausted, message, [
        detail(QuotaFailureSchema, { violations: [{ subject: "storage_quota_bytes", description: message }] }),
      ]),
    );
    expect(err.kind).toBe("quota");
    expect(err.limit).toBe("storage_quota_bytes");
    expect(err.limitBytes).toBe(1000);
    expect(err.usedBytes).toBe(900);
  });

  it("a rate limit: kind rate_limited with RetryInfo's delay", async () => {
    const err = await errorFrom(
      grpcWebError(Code.ResourceExhausted, "too many login attempts; try again in 13 s", [
        detail(QuotaFailureSchema, { violations: [{ subject: "auth.login" }] }),
        detail(RetryInfoSchema, { retryDelay: create(DurationSchema, { seconds: 12n, nanos: 500_000_000 }) }),
      ]),
    );
    expect(err.kind).toBe("rate_limited");
    expect(err.retryAfterSeconds).toBe(12.5);
    expect(err.limit).toBe("auth.login");
  });

  it("a size limit: kind too_large naming it", async () => {
    const err = await errorFrom(
      grpcWebError(Code.ResourceExhausted, "size 9 exceeds the per-file limit of 8 bytes (storage_max_file_bytes)", [
        detail(QuotaFailureSchema, { violations: [{ subject: "storage_max_file_bytes" }] }),
      ]),
    );
    expect(err.kind).toBe("too_large");
    expect(err.limit).toBe("storage_max_file_bytes");
  });

  it("FAILED_PRECONDITION carries ErrorInfo's reason and metadata", async () => {
    const err = await errorFrom(
      grpcWebError(Code.FailedPrecondition, "offset 0 does not match the committed size 4; resume at offset 4", [
        detail(ErrorInfoSchema, {
          reason: "UPLOAD_OFFSET_MISMATCH",
          domain: "flowdock",
          metadata: { committed_size: "4" },
        }),
      ]),
    );
    expect(err.kind).toBe("precondition");
    expect(err.details.reason).toBe("UPLOAD_OFFSET_MISMATCH");
    expect(err.details.metadata).toEqual({ committed_size: "4" });
  });

  it("the scanner's size limit is too_large", async () => {
    const err = await errorFrom(
      grpcWebError(Code.FailedPrecondition, "file is larger than the virus scanner's limit of 100 bytes", [
        detail(ErrorInfoSchema, { reason: "SCAN_LIMIT_EXCEEDED", domain: "flowdock", metadata: { limit_bytes: "100" } }),
      ]),
    );
    expect(err.kind).toBe("too_large");
    expect(err.limitBytes).toBe(100);
  });

  it.each([
    [Code.AlreadyExists, "conflict"],
    [Code.Aborted, "conflict"],
    [Code.NotFound, "not_found"],
    [Code.PermissionDenied, "permission"],
    [Code.Unauthenticated, "unauthenticated"],
    [Code.Unavailable, "unavailable"],
    [Code.Internal, "internal"],
    [Code.DataLoss, "internal"],
  ] as const)("code %s is kind %s", async (code, kind) => {
    const err = await errorFrom(grpcWebError(code, "message from the server"));
    expect(err.kind).toBe(kind);
    expect(err.message).toBe("message from the server");
    expect(err.code).toBe(code);
  });

  it("an unreachable gateway (fetch TypeError) is unavailable with a clear message", async () => {
    const err = await errorFrom(() => Promise.reject(new TypeError("Failed to fetch")));
    expect(err.kind).toBe("unavailable");
    expect(err.code).toBe(Code.Unavailable);
    expect(err.message).toMatch(/cannot reach the FlowDock server/);
  });

  it("Envoy's own 503 (no gRPC status) is unavailable", async () => {
    const err = await errorFrom(new Response("upstream connect error", { status: 503 }));
    expect(err.kind).toBe("unavailable");
  });

  it("requests go to the base URL with credentials, never omitted", async () => {
    const seen: { url: string; credentials: RequestCredentials | undefined }[] = [];
    const client = createClient({
      baseUrl: "https://files.example/",
      cookieSession: false,
      fetch: async (input, init) => {
        seen.push({ url: String(input), credentials: init?.credentials });
        return grpcWebError(Code.NotFound, "no");
      },
    });
    await client.storage.getNode({ nodeId: "x" }).catch(() => undefined);
    expect(seen).toEqual([
      { url: "https://files.example/flowdock.storage.v1.StorageService/GetNode", credentials: "same-origin" },
    ]);
  });
});
