// Opt-in: the SDK against a real `flowdock up` through the real Envoy (grpc-web over HTTP/1.1, as a browser).
// FLOWDOCK_URL=http://127.0.0.1:8080 npx vitest run src/live.test.ts  (tests/e2e/test_ts_sdk.py runs it in CI.)
// Node has no cookie store, so a tiny jar plays the browser's part: it keeps what Set-Cookie says (Path,
// Max-Age) and sends it back on matching paths. Script never sees the cookie in a browser; here only the jar does.
import { describe, expect, it } from "vitest";
import { createClient, FlowDockError, type FlowDockClient, type UploadProgress, type UploadRecord } from "./index";

// Skipped without it; the fallback only lets the (skipped) suite body build its clients.
const URL_ = process.env["FLOWDOCK_URL"];
const BASE = URL_ ?? "http://127.0.0.1:9";

class CookieJar {
  cookies = new Map<string, { value: string; path: string; attributes: string }>();

  fetch: typeof globalThis.fetch = async (input, init) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    const headers = new Headers(init?.headers);
    const cookie = [...this.cookies]
      .filter(([, c]) => url.pathname.startsWith(c.path))
      .map(([name, c]) => `${name}=${c.value}`)
      .join("; ");
    if (cookie) headers.set("cookie", cookie);
    const response = await globalThis.fetch(input, { ...init, headers });
    for (const line of response.headers.getSetCookie()) {
      const [pair = "", ...attrs] = line.split(";").map((s) => s.trim());
      const [name = "", value = ""] = pair.split("=");
      const path = attrs.find((a) => a.toLowerCase().startsWith("path="))?.slice(5) ?? "/";
      if (attrs.some((a) => a.toLowerCase() === "max-age=0")) this.cookies.delete(name);
      else this.cookies.set(name, { value, path, attributes: attrs.join("; ") });
    }
    return response;
  };
}

/** Byte equality without a deep-equal over millions of elements (slow in expect). */
function same(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

function content(n: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 31 + 7) & 0xff;
  return out;
}

async function downloaded(client: FlowDockClient, fileId: string): Promise<{ bytes: Uint8Array; disposition: string }> {
  const url = await client.downloadUrl(fileId);
  expect(url.startsWith(client.baseUrl + "/api/v1/download/")).toBe(true);
  const response = await fetch(url); // a plain GET, as a browser's native download: no token, no SDK
  expect(response.status).toBe(200);
  return {
    bytes: new Uint8Array(await response.arrayBuffer()),
    disposition: response.headers.get("content-disposition") ?? "",
  };
}

describe.skipIf(!URL_)("the SDK against a real FlowDock (FLOWDOCK_URL)", { timeout: 60_000 }, () => {
  const jar = new CookieJar();
  const expired: string[] = [];
  const client = createClient({ baseUrl: BASE, fetch: jar.fetch, onSessionExpired: () => expired.push("expired") });
  const email = `sdk${Date.now()}${Math.floor(Math.random() * 1e6)}@example.org`;
  const password = "correct horse battery staple";
  let folderId = "";

  it("registers and logs in; the refresh token arrives only as an HttpOnly cookie", async () => {
    await client.auth.register({ email, password, displayName: "SDK smoke" });
    expect(await client.login(email, password)).toEqual({ signedIn: true });
    const cookie = jar.cookies.get("fd_refresh");
    expect(cookie?.value).toBeTruthy();
    expect(cookie?.path).toBe("/flowdock.auth.v1.AuthService/");
    expect(cookie?.attributes).toMatch(/HttpOnly/);
    expect(cookie?.attributes).toMatch(/SameSite=Strict/);
    expect((await client.auth.getMe({})).email).toBe(email);
    const folder = await client.storage.createFolder({ parentId: "root", name: "sdk-smoke" });
    folderId = folder.id;
  });

  it("uploads a small file in one call and downloads it by URL", async () => {
    const data = content(1000);
    const result = await client.upload(new File([data], "small.bin"), { parentId: folderId });
    expect(result.node.size).toBe(1000n);
    const got = await downloaded(client, result.node.id);
    expect(same(got.bytes, data)).toBe(true);
    expect(got.disposition).toMatch(/small\.bin/);
  });

  it("uploads a 0-byte file", async () => {
    const result = await client.upload(new File([], "empty.txt"), { parentId: folderId });
    expect(result.node.size).toBe(0n);
    expect((await downloaded(client, result.node.id)).bytes.length).toBe(0);
  });

  it("uploads in server-advised chunks with progress, and the bytes come back intact", async () => {
    const data = content(2.5 * 1024 * 1024);
    const progress: UploadProgress[] = [];
    const result = await client.upload(new File([data], "big.bin"), {
      parentId: folderId,
      onProgress: (p) => progress.push(p),
    });
    // 1 MiB is the server's default advice (storage_chunk_bytes).
    expect(progress.map((p) => p.committedBytes)).toEqual([0, 1048576, 2097152, 2621440]);
    expect(same((await downloaded(client, result.node.id)).bytes, data)).toBe(true);
  });

  it("a cancelled upload resumes from what the server stored (as after a reload)", async () => {
    const data = content(3 * 1024 * 1024 + 5);
    const controller = new AbortController();
    const records: UploadRecord[] = [];
    const err = await client
      .upload(new File([data], "resumed.bin", { lastModified: 42 }), {
        parentId: folderId,
        signal: controller.signal,
        onCreated: (r) => records.push(r),
        onProgress: (p) => {
          if (p.committedBytes >= 1048576) controller.abort();
        },
      })
      .catch((e: unknown) => e);
    expect((err as FlowDockError).kind).toBe("cancelled");
    expect(records).toHaveLength(1);
    const record = records[0] as UploadRecord;
    expect(record).toMatchObject({ name: "resumed.bin", size: data.length, lastModified: 42, parentId: folderId });
    const state = await client.storage.getUpload({ uploadId: record.uploadId });
    expect(Number(state.committedSize)).toBeGreaterThanOrEqual(1048576);
    expect(Number(state.committedSize)).toBeLessThan(data.length);
    const seen: number[] = [];
    const result = await client.resumeUpload(record.uploadId, new File([data], "resumed.bin"), {
      onProgress: (p) => seen.push(p.committedBytes),
    });
    expect(seen[0]).toBe(Number(state.committedSize)); // nothing the server had was sent again
    expect(same((await downloaded(client, result.node.id)).bytes, data)).toBe(true);
  });

  it("server errors arrive as FlowDockError kinds with their details", async () => {
    const clash = await client.upload(new File([content(10)], "small.bin"), { parentId: folderId }).catch((e) => e);
    expect(clash).toBeInstanceOf(FlowDockError);
    expect((clash as FlowDockError).kind).toBe("conflict");
    const bad = await client.storage.createFolder({ parentId: folderId, name: "a/b" }).catch((e: unknown) => e);
    expect((bad as FlowDockError).kind).toBe("invalid");
    expect((bad as FlowDockError).field).toBe("name");
    const missing = await client.storage.getNode({ nodeId: "00000000-0000-0000-0000-000000000000" }).catch((e) => e);
    expect((missing as FlowDockError).kind).toBe("not_found");
  });

  it("a reload (a new client, same cookie) restores the session; concurrent calls then share one refresh", async () => {
    const reloaded = createClient({ baseUrl: BASE, fetch: jar.fetch });
    expect(await reloaded.restoreSession()).toBe(true);
    expect((await reloaded.auth.getMe({})).email).toBe(email);
    // Rotation is enforced by the server: if these calls refreshed in parallel, the reused cookie would end the
    // session and some would fail.
    const results = await Promise.all(Array.from({ length: 5 }, () => reloaded.restoreSession()));
    expect(results).toEqual([true, true, true, true, true]);
    expect((await reloaded.auth.getMe({})).email).toBe(email);
    reloaded.close();
  });

  it("logout ends the session and clears the cookie", async () => {
    await client.logout();
    expect(client.signedIn).toBe(false);
    expect(jar.cookies.has("fd_refresh")).toBe(false);
    const after = createClient({ baseUrl: BASE, fetch: jar.fetch });
    expect(await after.restoreSession()).toBe(false);
    expect(expired).toEqual([]);
    client.close();
  });

  it("an unreachable gateway is kind unavailable", async () => {
    const nowhere = createClient({ baseUrl: "http://127.0.0.1:9", fetch: jar.fetch });
    const err = await nowhere.storage.getQuota({}).catch((e: unknown) => e);
    expect((err as FlowDockError).kind).toBe("unavailable");
  });
});
