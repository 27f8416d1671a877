// The signed-in state: the access token in memory only, refreshes serialised, a timer before expiry.
//
// The refresh token never reaches JavaScript when the server supports cookie sessions: auth_svc sets it as an
// HttpOnly, SameSite=Strict cookie (fd_refresh, Path=/flowdock.auth.v1.AuthService/) when a Login/LoginTotp/
// FinishOidcLogin/Refresh/Logout call carries `x-flowdock-cookie-session: 1`, and answers an empty refresh_token.
// A server without that support answers the token in the body: it is then kept in this object (memory) only.
import { getOption, type DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError, type Client, type Interceptor } from "@connectrpc/connect";
import { public$ } from "./gen/flowdock/api/v1/options_pb";
import { AuthService, type LoginResponse } from "./gen/flowdock/auth/v1/auth_pb";
import { FlowDockError, toFlowDockError } from "./errors";

export const COOKIE_SESSION_HEADER = "x-flowdock-cookie-session";
const COOKIE_METHODS = new Set(["Login", "LoginTotp", "FinishOidcLogin", "Refresh", "Logout"]);
/** Methods the contract marks `(flowdock.api.v1.public) = true` (login, refresh, public links, ...): they take no
 *  access token, and an UNAUTHENTICATED from them (a wrong password, a link needing its password) says nothing about
 *  the session, so it never triggers a refresh. Read from the generated descriptors, as the gateway reads them. */
function isPublic(method: DescMethod): boolean {
  return getOption(method, public$);
}
// A token this close to its expiry counts as expired: it could lapse on the way (refresh first instead).
const EXPIRY_SKEW_MS = 1_000;
// The timer's next try when a refresh failed for want of a network (the token may still live a while).
const RETRY_TIMER_MS = 10_000;

/** What a login step ended in: signed in, or a second factor is needed (send mfaToken + code to loginTotp). */
export type LoginResult = { signedIn: true } | { signedIn: false; mfaRequired: true; mfaToken: string };

export interface SessionOptions {
  /** Ask auth_svc to keep the refresh token in an HttpOnly cookie (default true: browsers). */
  cookieSession: boolean;
  /** Called once when a refresh is refused (the refresh token expired or was revoked): send the user to log in. */
  onSessionExpired?: () => void;
  /** When to refresh, as a fraction of the access token's lifetime (default 0.8). */
  refreshAt: number;
}

export class Session {
  private accessToken: string | undefined;
  private expiresAt = 0;
  private refreshToken: string | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private inflight: Promise<string> | undefined;
  private quiet = 0;
  private readonly listeners = new Set<(signedIn: boolean) => void>();
  private auth: Client<typeof AuthService> | undefined;

  constructor(private readonly options: SessionOptions) {}

  /** The AuthService client refreshes go through (set once the transport exists). */
  bind(auth: Client<typeof AuthService>): void {
    this.auth = auth;
  }

  get signedIn(): boolean {
    return this.accessToken !== undefined;
  }

  /** Can a refresh be tried at all (a cookie may be there; or a body refresh token is held)? */
  get canRefresh(): boolean {
    return this.options.cookieSession || this.refreshToken !== undefined;
  }

  get token(): string | undefined {
    return this.accessToken;
  }

  onChange(listener: (signedIn: boolean) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Take the tokens of a Login/LoginTotp/FinishOidcLogin/Refresh answer. */
  apply(resp: LoginResponse): LoginResult {
    if (resp.mfaRequired) return { signedIn: false, mfaRequired: true, mfaToken: resp.mfaToken };
    if (!resp.accessToken) {
      throw new FlowDockError({ kind: "internal", message: "the server answered without an access token" });
    }
    const was = this.signedIn;
    this.accessToken = resp.accessToken;
    this.expiresAt = Date.now() + resp.expiresIn * 1000;
    // Cookie sessions answer an empty refresh_token; a server without them sends it here (kept in memory only).
    this.refreshToken = resp.refreshToken || undefined;
    this.schedule(resp.expiresIn * 1000 * this.options.refreshAt);
    if (!was) this.emit();
    return { signedIn: true };
  }

  /** The current access token, refreshed first if it has expired (the tab slept through the timer). */
  async validToken(): Promise<string | undefined> {
    if (this.inflight) return this.inflight;
    if (this.accessToken !== undefined && Date.now() >= this.expiresAt - EXPIRY_SKEW_MS && this.canRefresh) {
      return this.refresh();
    }
    return this.accessToken;
  }

  /** One Refresh call at a time: refresh tokens rotate, and a reused one would end the whole session. */
  refresh(): Promise<string> {
    this.inflight ??= this.doRefresh().finally(() => {
      this.inflight = undefined;
    });
    return this.inflight;
  }

  /** Run `fn` without calling onSessionExpired on a refused refresh (app start, logout). */
  async quietly<T>(fn: () => Promise<T>): Promise<T> {
    this.quiet++;
    try {
      return await fn();
    } finally {
      this.quiet--;
    }
  }

  /** Stop the refresh timer, keeping the token (Node scripts, tests). */
  stop(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  clear(): void {
    const was = this.signedIn;
    this.accessToken = undefined;
    this.refreshToken = undefined;
    this.expiresAt = 0;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    if (was) this.emit();
  }

  private async doRefresh(): Promise<string> {
    if (!this.auth) throw new Error("Session used before bind()");
    try {
      const resp = await this.auth.refresh({ refreshToken: this.refreshToken ?? "" });
      this.apply(resp);
      return this.accessToken as string;
    } catch (e) {
      const err = toFlowDockError(e);
      if (err.kind !== "unavailable" && err.kind !== "cancelled" && err.kind !== "rate_limited") {
        // Refused: the refresh token (or cookie) expired or was revoked. Nothing more can be done here.
        const had = this.signedIn;
        this.clear();
        if (this.quiet === 0 && (had || this.options.cookieSession)) this.options.onSessionExpired?.();
      }
      throw err;
    }
  }

  private schedule(delayMs: number): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    const timer = setTimeout(() => {
      this.timer = undefined;
      this.refresh().catch((err: unknown) => {
        // Network down: try again while the token still lives; a refused refresh already ended the session.
        if (err instanceof FlowDockError && err.kind === "unavailable" && this.signedIn) {
          this.schedule(Math.min(RETRY_TIMER_MS, Math.max(0, this.expiresAt - Date.now())));
        }
      });
    }, Math.max(0, delayMs));
    // Node (tests, scripts): the refresh timer alone must not keep the process alive.
    // Written without Node's types so the SDK also type-checks in a DOM-only project (the web app's tsconfig).
    (timer as { unref?: () => void }).unref?.();
    this.timer = timer;
  }

  private emit(): void {
    for (const listener of this.listeners) listener(this.signedIn);
  }
}

/** Adds the bearer token and the cookie-session header; refreshes and retries once on UNAUTHENTICATED. */
export function sessionInterceptor(session: Session, cookieSession: boolean): Interceptor {
  return (next) => async (req) => {
    const authCall = req.service.typeName === AuthService.typeName;
    if (authCall && cookieSession && COOKIE_METHODS.has(req.method.name)) req.header.set(COOKIE_SESSION_HEADER, "1");
    if (isPublic(req.method)) return next(req);
    const token = await session.validToken();
    if (token !== undefined) req.header.set("authorization", `Bearer ${token}`);
    try {
      return await next(req);
    } catch (e) {
      // A streamed request cannot be replayed; neither can anything without a way to refresh.
      if (req.stream || !(e instanceof ConnectError) || e.code !== Code.Unauthenticated || !session.canRefresh) throw e;
      // Another call may have refreshed meanwhile: then use its token instead of rotating again.
      const current = session.token;
      const fresh = current !== undefined && current !== token ? current : await session.refresh();
      req.header.set("authorization", `Bearer ${fresh}`);
      return await next(req);
    }
  };
}
