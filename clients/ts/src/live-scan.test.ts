// Opt-in, against a real `flowdock up` that scans with clamd, has a small default quota and a low failed-login
// limit (set up by tests/e2e/test_ts_sdk.py): the server's refusals (infected, quota, rate limit) reach the app as
// FlowDockError kinds.
// FLOWDOCK_URL, FLOWDOCK_EICAR_HEX (the test string, passed in so no scanner flags this file),
// FLOWDOCK_EICAR_SIGNATURE and FLOWDOCK_QUOTA_BYTES come from the pytest.
import { describe, expect, it } from "vitest";
import { createClient, FlowDockError } from "./index";

const env = process.env;
// Skipped without it; the fallback only lets the (skipped) suite body build its clients.
const URL_ = env["FLOWDOCK_URL"];
const BASE = URL_ ?? "http://127.0.0.1:9";
const EICAR = Buffer.from(env["FLOWDOCK_EICAR_HEX"] ?? "", "hex");
const QUOTA = Number(env["FLOWDOCK_QUOTA_BYTES"] ?? "0");

describe.skipIf(!URL_ || EICAR.length === 0 || !QUOTA)("server refusals as error kinds (scanning FlowDock)", { timeout: 60_000 }, () => {
  const client = createClient({ baseUrl: BASE, cookieSession: false });
  const chunked = createClient({ baseUrl: BASE, cookieSession: false, inlineUploadBytes: 0 });
  const email = `scan${Date.now()}${Math.floor(Math.random() * 1e6)}@example.org`;
  const password = "correct horse battery staple";

  it("logs in", async () => {
    await client.auth.register({ email, password });
    expect(await client.login(email, password)).toEqual({ signedIn: true });
    expect(await chunked.login(email, password)).toEqual({ signedIn: true });
  });

  it.each([
    ["one call (inline)", () => client],
    ["chunks", () => chunked],
  ])("an infected file sent in %s is kind infected with the signature", async (_how, which) => {
    const err = await which()
      .upload(new File([EICAR], "eicar.com"))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FlowDockError);
    expect((err as FlowDockError).kind).toBe("infected");
    expect((err as FlowDockError).signature?.startsWith(env["FLOWDOCK_EICAR_SIGNATURE"] ?? "?")).toBe(true);
  });

  it("repeated wrong passwords end in kind rate_limited with the server's retry delay", async () => {
    const target = `rl${email}`;
    await client.auth.register({ email: target, password });
    const kinds: string[] = [];
    let last: FlowDockError | undefined;
    for (let i = 0; i < 6 && last?.kind !== "rate_limited"; i++) {
      const other = createClient({ baseUrl: BASE, cookieSession: false });
      last = (await other.login(target, "wrong password entirely").catch((e: unknown) => e)) as FlowDockError;
      kinds.push(last.kind);
    }
    expect(kinds.slice(0, 3)).toEqual(["unauthenticated", "unauthenticated", "unauthenticated"]);
    expect(last?.kind).toBe("rate_limited");
    expect(last?.limit).toBe("auth.login.account");
    expect(last?.retryAfterSeconds).toBeGreaterThan(0);
  });

  it("a file over the quota is kind quota with the numbers, before any byte is sent", async () => {
    await client.upload(new File([new Uint8Array(1000)], "some.bin"));
    const err = await chunked.upload(new File([new Uint8Array(QUOTA)], "too-big.bin")).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FlowDockError);
    const e = err as FlowDockError;
    expect(e.kind).toBe("quota");
    expect(e.limit).toBe("storage_quota_bytes");
    expect(e.limitBytes).toBe(QUOTA);
    expect(e.usedBytes).toBe(1000);
    client.close();
    chunked.close();
  });
});
