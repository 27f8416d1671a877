import { describe, expect, it } from 'vitest';
import type { LoginOutcome, Me } from '../api/types';
import { createAuthStore, type AuthApi } from './store';

const ME: Me = { id: 'u1', email: 'a@example.com', displayName: 'A', totpEnabled: false, admin: false };

/**
 * The store's calls as a server would order them: Logout answers only when the test releases it (a slow network),
 * and it ends whatever session exists when it lands, as its cookie-clearing answer does in a browser.
 */
class SlowLogoutApi implements AuthApi {
  events: string[] = [];
  /** The session the "browser" holds: set by a login, cleared by a Logout's answer. */
  session: string | undefined;
  private releases: (() => void)[] = [];
  private n = 0;

  restoreSession = async (): Promise<boolean> => {
    this.session = `s${++this.n}`;
    return true;
  };

  me = async (): Promise<Me> => {
    if (!this.session) throw new Error('not signed in');
    return ME;
  };

  login = async (email: string): Promise<LoginOutcome> => {
    this.session = `s${++this.n}`;
    this.events.push(`login ${email} -> ${this.session}`);
    return { kind: 'ok' };
  };

  logout = (): Promise<void> => {
    this.events.push('logout sent');
    return new Promise<void>((resolve) => {
      this.releases.push(() => {
        this.events.push(`logout answered (ends ${this.session ?? 'nothing'})`);
        this.session = undefined;
        resolve();
      });
    });
  };

  /** Let the oldest Logout answer. */
  answerLogout(): void {
    const release = this.releases.shift();
    if (!release) throw new Error('no Logout in flight');
    release();
  }
}

/** Let every pending promise callback run (the fakes answer without timers). */
const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

async function signedInStore() {
  const calls = new SlowLogoutApi();
  const store = createAuthStore(calls);
  await store.getState().boot();
  await settle();
  expect(store.getState()).toMatchObject({ status: 'signed-in', me: ME, loggingOut: false });
  return { calls, store };
}

describe('auth store: Log in while a Log out is in flight', () => {
  it('a login issued during a slow logout waits for it, and the new session survives', async () => {
    const { calls, store } = await signedInStore();
    const left: string[] = [];
    const logout = store.getState().logout(() => left.push('navigated to /login'));
    expect(store.getState().loggingOut).toBe(true);
    expect(left).toEqual(['navigated to /login']);

    const login = store.getState().login('a@example.com', 'pw');
    await settle();
    // The login is held back: nothing reached the server but the Logout.
    expect(calls.events).toEqual(['logout sent']);
    expect(store.getState().status).toBe('signed-in'); // the old session, until the Logout answers

    calls.answerLogout();
    await logout;
    expect(await login).toEqual({ kind: 'ok' });
    expect(calls.events).toEqual(['logout sent', 'logout answered (ends s1)', 'login a@example.com -> s2']);
    expect(calls.session).toBe('s2');
    expect(store.getState()).toMatchObject({ status: 'signed-in', me: ME, expired: false, loggingOut: false });
  });

  it('loggedOut() resolves at once without a Log out, and after it with one', async () => {
    const { calls, store } = await signedInStore();
    await store.getState().loggedOut();
    void store.getState().logout();
    let done = false;
    void store.getState().loggedOut().then(() => (done = true));
    await settle();
    expect(done).toBe(false);
    calls.answerLogout();
    await settle();
    expect(done).toBe(true);
    expect(store.getState()).toMatchObject({ status: 'anonymous', me: undefined, loggingOut: false });
  });

  it('a logout answering after a newer sign-in does not sign the store out', async () => {
    const { calls, store } = await signedInStore();
    const logout = store.getState().logout();
    // A sign-in that did not wait (as an OpenID Connect return could): the store shows it.
    await calls.login('a@example.com');
    await store.getState().signedIn();
    expect(store.getState().status).toBe('signed-in');
    calls.answerLogout();
    await logout;
    await settle();
    expect(store.getState()).toMatchObject({ status: 'signed-in', me: ME, loggingOut: false });
  });

  it('a failed Log out still ends the session here and lets Log in proceed', async () => {
    const calls = new SlowLogoutApi();
    calls.logout = () => Promise.reject(new Error('network down'));
    const store = createAuthStore(calls);
    await store.getState().boot();
    await expect(store.getState().logout()).rejects.toThrow('network down');
    await settle();
    expect(store.getState()).toMatchObject({ status: 'anonymous', loggingOut: false });
    expect(await store.getState().login('a@example.com', 'pw')).toEqual({ kind: 'ok' });
    expect(store.getState().status).toBe('signed-in');
  });
});
