import { create } from 'zustand';
import { api } from '../api';
import type { Me } from '../api/types';

type Status = 'checking' | 'anonymous' | 'signed-in';

interface AuthState {
  status: Status;
  me: Me | undefined;
  /** Set when a refresh was refused, so Log in can say why the person is there. */
  expired: boolean;
  boot(): Promise<void>;
  signedIn(): Promise<void>;
  /** The account as the server now has it (after a settings change). */
  setMe(me: Me): void;
  logout(): Promise<void>;
  sessionExpired(): void;
}

let booting: Promise<void> | undefined;

/** Who is signed in. The access token itself stays inside the SDK's memory: nothing here is persisted. */
export const useAuth = create<AuthState>((set, get) => ({
  status: 'checking',
  me: undefined,
  expired: false,
  boot() {
    // Once per page load, whoever asks first (main.tsx asks before React renders, so the refresh is on the wire
    // while the route's code loads); a second Refresh would spend the single-use cookie token twice.
    booting ??= (async () => {
      try {
        if (await api.restoreSession()) {
          // Signed in now: the page's own calls start at once; who we are arrives beside them.
          set({ status: 'signed-in', expired: false });
          void api
            .me()
            .then((me) => {
              if (get().status === 'signed-in') set({ me });
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
  async signedIn() {
    set({ status: 'signed-in', me: await api.me(), expired: false });
  },
  setMe(me) {
    if (get().status === 'signed-in') set({ me });
  },
  async logout() {
    try {
      await api.logout();
    } finally {
      set({ status: 'anonymous', me: undefined, expired: false });
    }
  },
  sessionExpired() {
    if (get().status === 'signed-in') set({ status: 'anonymous', me: undefined, expired: true });
  },
}));
