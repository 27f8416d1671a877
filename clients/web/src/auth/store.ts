import { create } from 'zustand';
import { api } from '../api';
import type { Api } from '../api/api';
import type { LoginOutcome, Me } from '../api/types';

type Status = 'checking' | 'anonymous' | 'signed-in';

/** The calls the store makes: the app's Api, or a fake of it in unit tests. */
export type AuthApi = Pick<Api, 'restoreSession' | 'me' | 'login' | 'logout'>;

export interface AuthState {
  status: Status;
  me: Me | undefined;
  /** Set when a refresh was refused, so Log in can say why the person is there. */
  expired: boolean;
  /**
   * A Log out is still on its way to the server. Log in and Sign up wait for it: its answer clears the refresh
   * cookie and the store's session, so a login finished before it would be logged out with the old session.
   */
  loggingOut: boolean;
  boot(): Promise<void>;
  /** Resolves once no Log out is in flight (at once when none is); never rejects. */
  loggedOut(): Promise<void>;
  /** Log in with a password once any Log out in flight has ended; signed in here too unless 2FA asks for a code. */
  login(email: string, password: string): Promise<LoginOutcome>;
  /** The session is there (a login step answered): fetch who we are and show the signed-in pages. */
  signedIn(): Promise<void>;
  /** The account as the server now has it (after a settings change). */
  setMe(me: Me): void;
  /**
   * End the session. `leave` runs first (Log out navigates to Log in before the session ends, so the signed-in
   * pages never react to it); `loggingOut` is already set while it runs.
   */
  logout(leave?: () => unknown): Promise<void>;
  sessionExpired(): void;
}

/** Who is signed in. The access token itself stays inside the SDK's memory: nothing here is persisted. */
export function createAuthStore(calls: AuthApi) {
  let booting: Promise<void> | undefined;
  // Bumped when a session starts (login, restore) and when a logout starts: an answer that arrives after a newer
  // one began (a logout finishing after a login, a GetMe after a logout) leaves the state alone.
  let generation = 0;
  // The Log out in flight, settled (never rejects); undefined when none is.
  let pendingLogout: Promise<void> | undefined;

  return create<AuthState>((set, get) => ({
    status: 'checking',
    me: undefined,
    expired: false,
    loggingOut: false,
    boot() {
      // Once per page load, whoever asks first (main.tsx asks before React renders, so the refresh is on the wire
      // while the route's code loads); a second Refresh would spend the single-use cookie token twice.
      booting ??= (async () => {
        try {
          if (await calls.restoreSession()) {
            const mine = ++generation;
            // Signed in now: the page's own calls start at once; who we are arrives beside them.
            set({ status: 'signed-in', expired: false });
            void calls
              .me()
              .then((me) => {
                if (generation === mine && get().status === 'signed-in') set({ me });
              })
              .catch(() => undefined); // the page's own calls report trouble
            return;
          }
        } catch {
          // no session to restore, or the server is down: the public pages still work
        }
        set({ status: 'anonymous', me: undefined });
      })();
      return booting;
    },
    async loggedOut() {
      // A second Log out may start while waiting for the first (a second tab's menu cannot, but be exact).
      while (pendingLogout) await pendingLogout;
    },
    async login(email, password) {
      await get().loggedOut();
      const outcome = await calls.login(email, password);
      if (outcome.kind === 'ok') await get().signedIn();
      return outcome;
    },
    async signedIn() {
      const mine = ++generation;
      const me = await calls.me();
      // A Log out started meanwhile ends this session too: do not show it as signed in.
      if (generation === mine) set({ status: 'signed-in', me, expired: false });
    },
    setMe(me) {
      if (get().status === 'signed-in') set({ me });
    },
    logout(leave) {
      const mine = ++generation;
      set({ loggingOut: true });
      const run = (async () => {
        try {
          await leave?.();
          await calls.logout();
        } finally {
          // A session begun since (a login that did not wait) is not this logout's to end.
          if (generation === mine) set({ status: 'anonymous', me: undefined, expired: false });
        }
      })();
      const settled = run.then(
        () => undefined,
        () => undefined,
      );
      pendingLogout = settled;
      void settled.then(() => {
        if (pendingLogout !== settled) return; // a later Log out is still on its way
        pendingLogout = undefined;
        set({ loggingOut: false });
      });
      return run;
    },
    sessionExpired() {
      if (get().status === 'signed-in') set({ status: 'anonymous', me: undefined, expired: true });
    },
  }));
}

export const useAuth = createAuthStore(api);
