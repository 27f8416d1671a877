// createClient: typed service clients over grpc-web (same origin by default), the session, uploads, downloads.
import type { DescService } from "@bufbuild/protobuf";
import { createClient as connectClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { AuthService } from "./gen/flowdock/auth/v1/auth_pb";
import { ShareService } from "./gen/flowdock/share/v1/share_pb";
import { PublicLinkService, StorageService } from "./gen/flowdock/storage/v1/storage_pb";
import { FlowDockError, toFlowDockError } from "./errors";
import { Session, sessionInterceptor, type LoginResult } from "./session";
import { Uploader, linkCalls, storageCalls, withNode, type LinkUploadOptions, type LinkUploadResult, type UploadOptions, type UploadResult } from "./upload";

export interface ClientOptions {
  /** The gateway's origin (default: the page's own origin, where Envoy serves grpc-web and the app). */
  baseUrl?: string;
  /** A fetch to use instead of the global one (tests, Node). Credentials default to "same-origin". */
  fetch?: typeof globalThis.fetch;
  /** Called when a refresh is refused (the session expired or was revoked): send the user to log in. */
  onSessionExpired?: () => void;
  /** Keep the refresh token in auth_svc's HttpOnly cookie (default true). */
  cookieSession?: boolean;
  /** Files up to this many bytes are sent in one call (default 1 MiB; the server's own limit wins). */
  inlineUploadBytes?: number;
  /** Advanced (tests): build the transport from the SDK's interceptors, e.g. createRouterTransport. */
  transport?: (interceptors: Interceptor[]) => Transport;
  /** Advanced (tests): retry timing of uploads, in ms. */
  retryDelayMs?: number;
  maxRetryDelayMs?: number;
  finishPollMs?: number;
}

export interface FlowDockClient {
  /** Typed clients of the generated services; every error they throw is a FlowDockError. */
  readonly auth: Client<typeof AuthService>;
  readonly storage: Client<typeof StorageService>;
  readonly share: Client<typeof ShareService>;
  readonly publicLinks: Client<typeof PublicLinkService>;
  /** The absolute origin calls go to. */
  readonly baseUrl: string;
  readonly signedIn: boolean;
  /** Listen to sign-in/sign-out (login, restore, logout, expiry); returns the unsubscribe function. */
  onSessionChange(listener: (signedIn: boolean) => void): () => void;
  login(email: string, password: string, deviceName?: string): Promise<LoginResult>;
  loginTotp(mfaToken: string, code: string): Promise<LoginResult>;
  /** Finish an OpenID Connect login with what the provider sent back to the redirect URI. */
  finishOidcLogin(state: string, code: string, deviceName?: string): Promise<LoginResult>;
  /** On app start: sign in again from the refresh cookie, so a reload keeps the session. False: not signed in. */
  restoreSession(): Promise<boolean>;
  /**
   * End the session on the server (and its cookie) and forget the token. A login, 2FA step, OpenID Connect finish or
   * restore started meanwhile waits until the Logout has answered: its answer clears the refresh cookie and the
   * token, which would otherwise end the new session with the old one.
   */
  logout(): Promise<void>;
  upload(file: Blob, options?: UploadOptions): Promise<UploadResult>;
  resumeUpload(uploadId: string, file: Blob, options?: UploadOptions): Promise<UploadResult>;
  abortUpload(uploadId: string): Promise<void>;
  /**
   * Drop a file through an upload-only public link (no account): `session` from ShareService.OpenLink (or "" for a
   * link without a password). The server picks a free name on a clash and never reveals the folder's content.
   */
  uploadToLink(token: string, session: string, file: Blob, options?: LinkUploadOptions): Promise<LinkUploadResult>;
  /** A short-lived absolute URL the browser downloads natively (an <a href>, no token needed). */
  downloadUrl(fileId: string, options?: { version?: string }): Promise<string>;
  /** Stop the refresh timer (Node scripts, tests). */
  close(): void;
}

function absoluteBase(baseUrl: string | undefined): string {
  const origin = (globalThis as { location?: { origin?: string } }).location?.origin;
  if (baseUrl === undefined) {
    if (!origin) throw new FlowDockError({ kind: "invalid", field: "baseUrl", message: "baseUrl: required outside a browser" });
    return origin;
  }
  return new URL(baseUrl, origin).href.replace(/\/$/, "");
}

/** The refresh cookie must travel: never let a caller's fetch default to credentials "omit". */
function withCredentials(f: typeof globalThis.fetch | undefined): typeof globalThis.fetch {
  return (input, init) => (f ?? globalThis.fetch)(input, { ...init, credentials: init?.credentials ?? "same-origin" });
}

/** Wrap a Connect client so every rejection (unary and streams) is a FlowDockError. */
function mapErrors<S extends DescService>(service: S, client: Client<S>): Client<S> {
  const raw = client as unknown as Record<string, (...args: unknown[]) => unknown>;
  const out: Record<string, (...args: unknown[]) => unknown> = {};
  for (const method of service.methods) {
    const fn = raw[method.localName];
    if (!fn) continue;
    if (method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming") {
      out[method.localName] = (...args) => mapStream(fn(...args) as AsyncIterable<unknown>);
    } else {
      out[method.localName] = (...args) =>
        (fn(...args) as Promise<unknown>).catch((e: unknown) => {
          throw toFlowDockError(e);
        });
    }
  }
  return out as unknown as Client<S>;
}

async function* mapStream<T>(stream: AsyncIterable<T>): AsyncIterable<T> {
  try {
    yield* stream;
  } catch (e) {
    throw toFlowDockError(e);
  }
}

export function createClient(options: ClientOptions = {}): FlowDockClient {
  const cookieSession = options.cookieSession ?? true;
  const session = new Session({ cookieSession, onSessionExpired: options.onSessionExpired, refreshAt: 0.8 });
  const interceptors = [sessionInterceptor(session, cookieSession)];
  const baseUrl = options.transport ? (options.baseUrl ?? "http://localhost") : absoluteBase(options.baseUrl);
  const transport = options.transport
    ? options.transport(interceptors)
    : createGrpcWebTransport({ baseUrl, fetch: withCredentials(options.fetch), interceptors });
  const auth = mapErrors(AuthService, connectClient(AuthService, transport));
  const storage = mapErrors(StorageService, connectClient(StorageService, transport));
  const share = mapErrors(ShareService, connectClient(ShareService, transport));
  const publicLinks = mapErrors(PublicLinkService, connectClient(PublicLinkService, transport));
  session.bind(auth);
  const uploaderOptions = {
    inlineUploadBytes: options.inlineUploadBytes ?? 1024 * 1024,
    retryDelayMs: options.retryDelayMs ?? 500,
    maxRetryDelayMs: options.maxRetryDelayMs ?? 30_000,
    finishPollMs: options.finishPollMs ?? 500,
  };
  const uploader = new Uploader(storageCalls(storage), uploaderOptions);
  // The Logout on its way, settled (never rejects); undefined when none is.
  let loggingOut: Promise<void> | undefined;
  const afterLogout = async (): Promise<void> => {
    while (loggingOut) await loggingOut;
  };
  const logout = async (): Promise<void> => {
    session.stop(); // no timed Refresh of the session being ended (its answer would sign this client in again)
    try {
      await session.quietly(() => auth.logout({}));
    } catch (e) {
      const err = toFlowDockError(e);
      if (err.kind !== "unauthenticated") {
        session.clear();
        throw err;
      }
    }
    session.clear();
  };

  return {
    auth,
    storage,
    share,
    publicLinks,
    baseUrl,
    get signedIn() {
      return session.signedIn;
    },
    onSessionChange: (listener) => session.onChange(listener),
    login: async (email, password, deviceName = "") => {
      await afterLogout();
      return session.apply(await auth.login({ email, password, deviceName }));
    },
    loginTotp: async (mfaToken, code) => {
      await afterLogout();
      return session.apply(await auth.loginTotp({ mfaToken, code }));
    },
    finishOidcLogin: async (state, code, deviceName = "") => {
      await afterLogout();
      return session.apply(await auth.finishOidcLogin({ state, code, deviceName }));
    },
    restoreSession: async () => {
      await afterLogout();
      if (!session.canRefresh) return session.signedIn;
      try {
        await session.quietly(() => session.refresh());
        return true;
      } catch (e) {
        const err = toFlowDockError(e);
        if (err.kind === "unavailable" || err.kind === "rate_limited") throw err;
        return false; // no cookie, or it expired: not signed in
      }
    },
    logout: () => {
      const run = logout();
      const settled = run.then(
        () => undefined,
        () => undefined,
      );
      loggingOut = settled;
      void settled.then(() => {
        if (loggingOut === settled) loggingOut = undefined;
      });
      return run;
    },
    upload: async (file, opts) => withNode(await uploader.upload(file, opts)),
    resumeUpload: async (uploadId, file, opts) => withNode(await uploader.resume(uploadId, file, opts)),
    uploadToLink: (token, session, file, opts) =>
      new Uploader(linkCalls(publicLinks, token, session), uploaderOptions).upload(file, opts),
    abortUpload: (uploadId) => uploader.abort(uploadId),
    downloadUrl: async (fileId, opts = {}) => {
      const resp = await storage.createDownloadUrl({ fileId, version: opts.version ?? "" });
      return new URL(resp.url, baseUrl + "/").href;
    },
    close: () => session.stop(),
  };
}
