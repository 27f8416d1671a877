import { Code, ConnectError } from "@connectrpc/connect";
import { afterEach, describe, expect, it, vi } from "vitest";
import { createClient, FlowDockError } from "./index";
import { FakeAuth, FakeStorage, fakeTransport } from "./testing/fake-server";

function setup(auth = new FakeAuth(), onSessionExpired = vi.fn(), cookieSession = true, storage = new FakeStorage()) {
  const client = createClient({ transport: fakeTransport(auth, storage), onSessionExpired, cookieSession });
  return { client, auth, onSessionExpired };
}

afterEach(() => {
  vi.useRealTimers();
});

describe("login", () => {
  it("signs in, asks for a cookie session, and sends the bearer token", async () => {
    const { client, auth } = setup();
    expect(await client.login("a@example.com", "pw")).toEqual({ signedIn: true });
    expect(auth.loginHeaders).toEqual(["1"]);
    const me = await client.auth.getMe({});
    expect(me.displayName).toBe("a1");
    expect(auth.seenAuthorization).toEqual(["Bearer a1"]);
    expect(client.signedIn).toBe(true);
    client.close();
  });

  it("answers mfaRequired, then loginTotp signs in", async () => {
    const auth = new FakeAuth();
    auth.mfa = true;
    const { client } = setup(auth);
    expect(await client.login("a@example.com", "pw")).toEqual({ signedIn: false, mfaRequired: true, mfaToken: "mfa1" });
    expect(client.signedIn).toBe(false);
    expect(await client.loginTotp("mfa1", "123456")).toEqual({ signedIn: true });
    expect(client.signedIn).toBe(true);
    client.close();
  });

  it("a wrong password is kind unauthenticated and does not try to refresh", async () => {
    const { client, auth, onSessionExpired } = setup();
    const err = (await client.login("a@example.com", "nope").catch((e: unknown) => e)) as FlowDockError;
    expect(err).toBeInstanceOf(FlowDockError);
    expect(err.kind).toBe("unauthenticated");
    expect(auth.refreshCalls).toEqual([]);
    expect(onSessionExpired).not.toHaveBeenCalled();
  });
});

describe("refresh", () => {
  it("N concurrent calls with an expired token share ONE Refresh", async () => {
    vi.useFakeTimers({ shouldAdvanceTime: true });
    const { client, auth } = setup();
    await client.login("a@example.com", "pw");
    vi.setSystemTime(Date.now() + 301_000); // past expiry; the timer did not run (a sleeping tab)
    const answers = await Promise.all(Array.from({ length: 8 }, () => client.auth.getMe({})));
    expect(auth.refreshCalls).toHaveLength(1);
    expect(answers.map((a) => a.displayName)).toEqual(Array(8).fill("a2"));
    client.close();
  });

  it("N concurrent calls refused UNAUTHENTICATED share ONE Refresh, then each retries once", async () => {
    const auth = new FakeAuth();
    auth.bodyRefresh = true; // rotation is checked: a second refresh with the same token would kill the session
    const { client, onSessionExpired } = setup(auth, vi.fn(), false);
    await client.login("a@example.com", "pw");
    auth.validAccess.clear(); // the server stopped accepting the access token early
    const answers = await Promise.all(Array.from({ length: 6 }, () => client.auth.getMe({})));
    expect(auth.refreshCalls).toEqual([{ token: "r1", cookieHeader: null }]);
    expect(answers.every((a) => a.displayName === "a2")).toBe(true);
    expect(onSessionExpired).not.toHaveBeenCalled();
    client.close();
  });

  it("a call refused after another call already refreshed reuses the new token (no second rotation)", async () => {
    const auth = new FakeAuth();
    auth.bodyRefresh = true;
    const { client, onSessionExpired } = setup(auth, vi.fn(), false);
    await client.login("a@example.com", "pw");
    let release = () => {};
    auth.holdNextGetMe = new Promise<void>((r) => (release = r));
    const slow = client.auth.getMe({}); // sent with a1, answered late
    await new Promise((r) => setTimeout(r, 10));
    auth.validAccess.clear();
    expect((await client.auth.getMe({})).displayName).toBe("a2"); // refused, refreshed, retried
    release(); // now the slow call is refused with a1: a2 is already there
    expect((await slow).displayName).toBe("a2");
    expect(auth.refreshCalls).toHaveLength(1);
    expect(onSessionExpired).not.toHaveBeenCalled();
    client.close();
  });

  it("refreshes on a timer at 80% of expires_in", async () => {
    vi.useFakeTimers();
    const auth = new FakeAuth();
    auth.expiresIn = 100;
    const { client } = setup(auth);
    await client.login("a@example.com", "pw");
    await vi.advanceTimersByTimeAsync(79_000);
    expect(auth.refreshCalls).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1_100);
    expect(auth.refreshCalls).toEqual([{ token: "", cookieHeader: "1" }]);
    // The next one is scheduled from the new token's lifetime.
    await vi.advanceTimersByTimeAsync(80_100);
    expect(auth.refreshCalls).toHaveLength(2);
    const me = await client.auth.getMe({});
    expect(me.displayName).toBe("a3");
    client.close();
  });

  it("a refused refresh signs out and calls onSessionExpired once", async () => {
    const { client, auth, onSessionExpired } = setup();
    await client.login("a@example.com", "pw");
    const changes: boolean[] = [];
    client.onSessionChange((s) => changes.push(s));
    auth.validAccess.clear();
    auth.refuseRefresh = true;
    const results = await Promise.allSettled([client.auth.getMe({}), client.auth.getMe({})]);
    for (const r of results) {
      expect(r.status).toBe("rejected");
      expect((r as PromiseRejectedResult).reason).toBeInstanceOf(FlowDockError);
      expect(((r as PromiseRejectedResult).reason as FlowDockError).kind).toBe("unauthenticated");
    }
    expect(auth.refreshCalls).toHaveLength(1);
    expect(onSessionExpired).toHaveBeenCalledTimes(1);
    expect(client.signedIn).toBe(false);
    expect(changes).toEqual([false]);
  });

  it("a body refresh token (server without cookie sessions) is rotated in memory", async () => {
    const auth = new FakeAuth();
    auth.bodyRefresh = true;
    const { client } = setup(auth, vi.fn(), false);
    await client.login("a@example.com", "pw");
    auth.validAccess.clear();
    await client.auth.getMe({});
    auth.validAccess.clear();
    await client.auth.getMe({});
    expect(auth.refreshCalls.map((c) => c.token)).toEqual(["r1", "r2"]);
    client.close();
  });
});

describe("public methods (the contract's flowdock.api.v1.public)", () => {
  it("a public link refusing UNAUTHENTICATED neither refreshes nor ends the session, and gets no token", async () => {
    const storage = new FakeStorage();
    const { client, auth, onSessionExpired } = setup(new FakeAuth(), vi.fn(), true, storage);
    await client.login("a@example.com", "pw");
    const err = (await client.publicLinks.listLinkChildren({ token: "t" }).catch((e: unknown) => e)) as FlowDockError;
    expect(err.kind).toBe("unauthenticated");
    expect(auth.refreshCalls).toEqual([]);
    expect(onSessionExpired).not.toHaveBeenCalled();
    expect(client.signedIn).toBe(true);
    expect(storage.linkAuthorization).toEqual([null]);
    client.close();
  });

  it("an anonymous visitor's refused link call does not send them to log in", async () => {
    const { client, auth, onSessionExpired } = setup();
    await client.publicLinks.listLinkChildren({ token: "t" }).catch(() => undefined);
    expect(auth.refreshCalls).toEqual([]);
    expect(onSessionExpired).not.toHaveBeenCalled();
  });
});

describe("restoreSession and logout", () => {
  it("restoreSession signs in from the cookie (empty body token, cookie header)", async () => {
    const { client, auth, onSessionExpired } = setup();
    expect(await client.restoreSession()).toBe(true);
    expect(auth.refreshCalls).toEqual([{ token: "", cookieHeader: "1" }]);
    expect(client.signedIn).toBe(true);
    expect(onSessionExpired).not.toHaveBeenCalled();
    client.close();
  });

  it("restoreSession without a valid cookie answers false without onSessionExpired", async () => {
    const auth = new FakeAuth();
    auth.refuseRefresh = true;
    const { client, onSessionExpired } = setup(auth);
    expect(await client.restoreSession()).toBe(false);
    expect(client.signedIn).toBe(false);
    expect(onSessionExpired).not.toHaveBeenCalled();
  });

  it("logout ends the session on the server with the cookie header and forgets the token", async () => {
    const { client, auth, onSessionExpired } = setup();
    await client.login("a@example.com", "pw");
    await client.logout();
    expect(client.signedIn).toBe(false);
    expect(auth.seenAuthorization).toEqual(["Bearer a1"]);
    expect(auth.logoutHeaders).toEqual(["1"]);
    expect(await client.restoreSession()).toBe(false);
    expect(onSessionExpired).not.toHaveBeenCalled();
  });

  it("a login started while a Logout is on its way waits for its answer, and the new session survives it", async () => {
    const { client, auth, onSessionExpired } = setup();
    await client.login("a@example.com", "pw");
    let release = () => {};
    auth.holdNextLogout = new Promise<void>((r) => (release = r));
    const logout = client.logout();
    const login = client.login("a@example.com", "pw");
    await new Promise((r) => setTimeout(r, 20));
    expect(auth.events).toEqual(["login a1"]); // the second login is held back while the Logout is in flight
    release();
    await logout;
    expect(await login).toEqual({ signedIn: true });
    expect(auth.events).toEqual(["login a1", "logout", "login a2"]);
    expect(client.signedIn).toBe(true);
    expect((await client.auth.getMe({})).displayName).toBe("a2");
    expect(await client.restoreSession()).toBe(true); // the cookie is the new session's
    expect(onSessionExpired).not.toHaveBeenCalled();
    client.close();
  });

  it("a failed Logout still lets the next login through", async () => {
    const { client, auth } = setup();
    await client.login("a@example.com", "pw");
    auth.failNextLogout = new ConnectError("gateway down", Code.Unavailable);
    const err = (await client.logout().catch((e: unknown) => e)) as FlowDockError;
    expect(err.kind).toBe("unavailable");
    expect(client.signedIn).toBe(false);
    expect(await client.login("a@example.com", "pw")).toEqual({ signedIn: true });
    client.close();
  });
});
