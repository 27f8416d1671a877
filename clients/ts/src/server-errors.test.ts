// Opt-in: statuses made by the server's own encoder (flowdock_kernel.grpc_errors), written to a JSON file by
// tests/unit/test_ts_error_mapping.py (FLOWDOCK_ERROR_CASES), decoded here as Envoy's grpc-web trailer.
import { readFileSync } from "node:fs";
import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { createClient, FlowDockError } from "./index";

interface Case {
  code: Code;
  message: string;
  detailsBin: string;
  expect: Record<string, string | number>;
}

const file = process.env["FLOWDOCK_ERROR_CASES"];
const cases: Case[] = file ? (JSON.parse(readFileSync(file, "utf8")) as Case[]) : [];

function trailerResponse(c: Case): Response {
  const trailer = new TextEncoder().encode(
    `grpc-status: ${c.code}\r\ngrpc-message: ${encodeURIComponent(c.message)}\r\ngrpc-status-details-bin: ${c.detailsBin}\r\n`,
  );
  const frame = new Uint8Array(5 + trailer.length);
  frame[0] = 0x80;
  new DataView(frame.buffer).setUint32(1, trailer.length);
  frame.set(trailer, 5);
  return new Response(frame, { status: 200, headers: { "content-type": "application/grpc-web+proto" } });
}

describe.skipIf(!file)("the server's own statuses (FLOWDOCK_ERROR_CASES)", () => {
  it.each(cases.map((c) => [c.message, c] as const))("%s", async (_message, c) => {
    const client = createClient({ baseUrl: "https://files.example", cookieSession: false, fetch: async () => trailerResponse(c) });
    const err = (await client.storage.getQuota({}).catch((e: unknown) => e)) as FlowDockError;
    expect(err).toBeInstanceOf(FlowDockError);
    expect(err.message).toBe(c.message);
    expect(err.code).toBe(c.code);
    const { kind, field, limit, usedBytes, limitBytes, retryAfterSeconds, reason, committedSize } = c.expect;
    expect(err.kind).toBe(kind);
    if (field !== undefined) expect(err.field).toBe(field);
    if (limit !== undefined) expect(err.limit).toBe(limit);
    if (usedBytes !== undefined) expect(err.usedBytes).toBe(usedBytes);
    if (limitBytes !== undefined) expect(err.limitBytes).toBe(limitBytes);
    if (retryAfterSeconds !== undefined) expect(err.retryAfterSeconds).toBe(retryAfterSeconds);
    if (reason !== undefined) expect(err.details.reason).toBe(reason);
    if (committedSize !== undefined) expect(err.details.metadata["committed_size"]).toBe(committedSize);
  });
});
