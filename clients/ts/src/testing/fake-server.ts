// In-memory fakes of the gateway's services for unit tests (createRouterTransport: the real Connect client
// stack, no network). Only the calls the SDK's own logic uses are implemented.
import { create } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createRouterTransport, type Interceptor, type Transport } from "@connectrpc/connect";
import { AuthService, LoginResponseSchema } from "../gen/flowdock/auth/v1/auth_pb";
import { ErrorInfoSchema, QuotaFailureSchema } from "../gen/google/rpc/error_details_pb";
import {
  CreateUploadRequestSchema,
  NodeKind,
  NodeSchema,
  PublicLinkService,
  StorageService,
  UploadSchema,
  UploadState,
  type CreateUploadRequest,
  type Upload,
} from "../gen/flowdock/storage/v1/storage_pb";

export interface FakeUpload {
  upload: Upload;
  data: Uint8Array;
  inline: boolean;
}

/** A storage_svc stand-in: uploads in memory, with hooks to inject failures. */
export class FakeStorage {
  uploads = new Map<string, FakeUpload>();
  writes: { offset: number; length: number }[] = [];
  calls: string[] = [];
  chunkSize = 4n;
  maxChunkSize = 16n;
  inlineLimit = 8;
  /** Before each WriteUploadChunk: return an error to throw, after (or instead of) storing the bytes. */
  beforeWrite?: (n: number) => { error: ConnectError; store: boolean } | undefined;
  /** What FinishUpload ends in (default COMPLETED). */
  finish: (u: FakeUpload) => Partial<Upload> = () => ({ state: UploadState.COMPLETED });
  /** Authorization headers PublicLinkService calls arrived with. */
  linkAuthorization: (string | null)[] = [];
  /** GetUpload answers before the final state (FINISHING polls). */
  finishingPolls = 0;
  /** How long each WriteUploadChunk takes to answer (a call in flight), in ms. */
  writeDelayMs = 0;
  /** "write <offset>" and "answer <offset>" of each WriteUploadChunk, in order (tests add their own entries). */
  events: string[] = [];
  private next = 1;

  open(size: number, committed: Uint8Array = new Uint8Array()): string {
    const id = `u${this.next++}`;
    const upload = create(UploadSchema, {
      uploadId: id,
      parentId: "root",
      name: "f.bin",
      size: BigInt(size),
      committedSize: BigInt(committed.length),
      chunkSize: this.chunkSize,
      maxChunkSize: this.maxChunkSize,
      state: UploadState.OPEN,
    });
    const data = new Uint8Array(size);
    data.set(committed);
    this.uploads.set(id, { upload, data, inline: false });
    return id;
  }

  private get(id: string): FakeUpload {
    const u = this.uploads.get(id);
    if (!u) throw new ConnectError("upload not found", Code.NotFound);
    return u;
  }

  private complete(u: FakeUpload): void {
    Object.assign(u.upload, this.finish(u));
    if (u.upload.state === UploadState.COMPLETED) {
      u.upload.node = create(NodeSchema, {
        id: `n-${u.upload.uploadId}`,
        name: u.upload.name,
        kind: NodeKind.FILE,
        size: u.upload.size,
        modifyTime: timestampNow(),
      });
    }
  }

  /** The one live file-drop link: its token, and the session its calls must carry. */
  linkToken = "drop-token";
  linkSession = "s1";
  /** How each link upload call arrived: method, token and session. */
  linkUploadCalls: { method: string; token: string; session: string }[] = [];

  private checkLink(method: string, req: { token: string; session: string }): void {
    this.linkUploadCalls.push({ method, token: req.token, session: req.session });
    if (req.token !== this.linkToken) throw new ConnectError("this link does not exist (any more)", Code.NotFound);
    if (req.session !== this.linkSession) throw new ConnectError("this link needs its password", Code.Unauthenticated);
  }

  routes(router: Parameters<Parameters<typeof createRouterTransport>[0]>[0]): void {
    const handlers = {
      createUpload: (req: CreateUploadRequest) => {
        this.calls.push("createUpload");
        if (req.content.length > this.inlineLimit) {
          throw new ConnectError(
            `inline content of ${req.content.length} bytes exceeds storage_inline_upload_bytes (${this.inlineLimit}); upload it in chunks instead`,
            Code.ResourceExhausted,
            undefined,
            [{ desc: QuotaFailureSchema, value: { violations: [{ subject: "storage_inline_upload_bytes" }] } }],
          );
        }
        const id = this.open(Number(req.size));
        const u = this.get(id);
        u.upload.name = req.name || req.relativePath;
        if (req.content.length > 0) {
          u.inline = true;
          u.data.set(req.content);
          u.upload.committedSize = req.size;
          this.complete(u);
        }
        return u.upload;
      },
      writeUploadChunk: async (req: { uploadId: string; offset: bigint; data: Uint8Array }) => {
        this.calls.push("writeUploadChunk");
        this.events.push(`write ${req.offset}`);
        if (this.writeDelayMs > 0) await new Promise((r) => setTimeout(r, this.writeDelayMs));
        this.events.push(`answer ${req.offset}`);
        const u = this.get(req.uploadId);
        const injected = this.beforeWrite?.(this.writes.length);
        this.writes.push({ offset: Number(req.offset), length: req.data.length });
        if (req.data.length > Number(this.maxChunkSize)) throw new ConnectError("chunk too big", Code.ResourceExhausted);
        if (req.offset !== u.upload.committedSize) {
          throw new ConnectError(
            `offset ${req.offset} does not match the committed size ${u.upload.committedSize}`,
            Code.FailedPrecondition,
            undefined,
            [
              {
                desc: ErrorInfoSchema,
                value: {
                  reason: "UPLOAD_OFFSET_MISMATCH",
                  domain: "flowdock",
                  metadata: { committed_size: String(u.upload.committedSize) },
                },
              },
            ],
          );
        }
        if (!injected || injected.store) {
          u.data.set(req.data, Number(req.offset));
          u.upload.committedSize += BigInt(req.data.length);
        }
        if (injected) throw injected.error;
        return { committedSize: u.upload.committedSize };
      },
      getUpload: (req: { uploadId: string }) => {
        this.calls.push("getUpload");
        const u = this.get(req.uploadId);
        if (u.upload.state === UploadState.FINISHING && this.finishingPolls-- <= 0) this.complete(u);
        return u.upload;
      },
      finishUpload: (req: { uploadId: string }) => {
        this.calls.push("finishUpload");
        const u = this.get(req.uploadId);
        if (u.upload.committedSize !== u.upload.size) throw new ConnectError("incomplete", Code.FailedPrecondition);
        if (this.finishingPolls > 0) u.upload.state = UploadState.FINISHING;
        else this.complete(u);
        return u.upload;
      },
      abortUpload: (req: { uploadId: string }) => {
        this.calls.push("abortUpload");
        this.uploads.delete(req.uploadId);
        return {};
      },
      createDownloadUrl: (req: { fileId: string }) => ({ url: `/api/v1/download/tok-${req.fileId}` }),
    };
    router.service(StorageService, handlers);
    router.service(PublicLinkService, {
      createLinkUpload: (req) => {
        this.checkLink("createLinkUpload", req);
        return handlers.createUpload(create(CreateUploadRequestSchema, {
            parentId: "drop",
            name: req.name,
            size: req.size,
            sha256: req.sha256,
            contentType: req.contentType,
            content: req.content,
          }),
        );
      },
      writeLinkUploadChunk: (req) => {
        this.checkLink("writeLinkUploadChunk", req);
        return handlers.writeUploadChunk(req);
      },
      finishLinkUpload: (req) => {
        this.checkLink("finishLinkUpload", req);
        // Like storage_svc: a visitor's answer does not name the stored file.
        const { node: _node, ...upload } = handlers.finishUpload(req);
        return upload;
      },
      listLinkChildren: (_req, ctx) => {
        this.linkAuthorization.push(ctx.requestHeader.get("authorization"));
        throw new ConnectError("this link needs its password: open the link first", Code.Unauthenticated);
      },
    });
  }
}

/** An auth_svc stand-in: rotating refresh tokens (a reused one is refused), access tokens that can be revoked. */
export class FakeAuth {
  refreshCalls: { token: string; cookieHeader: string | null }[] = [];
  loginHeaders: (string | null)[] = [];
  logoutHeaders: (string | null)[] = [];
  seenAuthorization: (string | null)[] = [];
  expiresIn = 300;
  /** Answer the refresh token in the body (a server without cookie sessions). */
  bodyRefresh = false;
  validAccess = new Set<string>();
  liveRefresh = "r0";
  refuseRefresh = false;
  mfa = false;
  /** The next GetMe waits for this before checking its token (a slow call overtaken by a refresh). */
  holdNextGetMe?: Promise<void>;
  /** The next Logout waits for this before it ends the session (a slow Logout; a login may be typed meanwhile). */
  holdNextLogout?: Promise<void>;
  /** The next Logout fails with this (after its hold), ending nothing. */
  failNextLogout?: ConnectError;
  /** "login <access token>" and "logout" as the server handled them, in order. */
  events: string[] = [];
  private n = 0;

  private issue(): ReturnType<typeof create<typeof LoginResponseSchema>> {
    const access = `a${++this.n}`;
    this.validAccess.add(access);
    this.liveRefresh = `r${this.n}`;
    return create(LoginResponseSchema, {
      accessToken: access,
      expiresIn: this.expiresIn,
      tokenType: "Bearer",
      refreshToken: this.bodyRefresh ? this.liveRefresh : "",
    });
  }

  routes(router: Parameters<Parameters<typeof createRouterTransport>[0]>[0]): void {
    router.service(AuthService, {
      login: (req, ctx) => {
        this.loginHeaders.push(ctx.requestHeader.get("x-flowdock-cookie-session"));
        if (req.password !== "pw") throw new ConnectError("wrong email or password", Code.Unauthenticated);
        if (this.mfa) return { mfaRequired: true, mfaToken: "mfa1" };
        return this.newSession();
      },
      loginTotp: (req) => {
        if (req.mfaToken !== "mfa1" || req.code !== "123456") throw new ConnectError("bad code", Code.Unauthenticated);
        return this.newSession();
      },
      refresh: async (req, ctx) => {
        this.refreshCalls.push({ token: req.refreshToken, cookieHeader: ctx.requestHeader.get("x-flowdock-cookie-session") });
        await new Promise((r) => setTimeout(r, 5)); // a real round trip: concurrent callers overlap it
        if (this.refuseRefresh) throw new ConnectError("session expired; log in again", Code.Unauthenticated);
        if (this.bodyRefresh && req.refreshToken !== this.liveRefresh) {
          this.refuseRefresh = true; // reuse of a rotated token kills the family
          throw new ConnectError("refresh token reused; session revoked", Code.Unauthenticated);
        }
        return this.issue();
      },
      logout: async (_req, ctx) => {
        this.logoutHeaders.push(ctx.requestHeader.get("x-flowdock-cookie-session"));
        const hold = this.holdNextLogout;
        this.holdNextLogout = undefined;
        if (hold) await hold;
        const failure = this.failNextLogout;
        this.failNextLogout = undefined;
        if (failure) throw failure;
        this.checkAccess(ctx.requestHeader.get("authorization"));
        this.events.push("logout");
        // Every token dies and the answer clears the cookie: whatever session the browser holds by then is gone.
        this.validAccess.clear();
        this.refuseRefresh = true;
        return {};
      },
      getMe: async (_req, ctx) => {
        const hold = this.holdNextGetMe;
        this.holdNextGetMe = undefined;
        if (hold) await hold;
        const who = this.checkAccess(ctx.requestHeader.get("authorization"));
        return { id: "user-1", email: "a@example.com", displayName: who };
      },
    });
  }

  /** A login's answer: a new session, and a new cookie (a refresh works again after a logout). */
  private newSession(): ReturnType<typeof create<typeof LoginResponseSchema>> {
    const resp = this.issue();
    this.refuseRefresh = false;
    this.events.push(`login ${resp.accessToken}`);
    return resp;
  }

  private checkAccess(header: string | null): string {
    this.seenAuthorization.push(header);
    const token = header?.replace(/^Bearer /, "") ?? "";
    if (!this.validAccess.has(token)) throw new ConnectError("access token expired", Code.Unauthenticated);
    return token;
  }
}

/** A transport factory for createClient({ transport }) serving the fakes given. */
export function fakeTransport(
  ...fakes: { routes: (router: Parameters<Parameters<typeof createRouterTransport>[0]>[0]) => void }[]
): (interceptors: Interceptor[]) => Transport {
  return (interceptors) =>
    createRouterTransport(
      (router) => {
        for (const fake of fakes) fake.routes(router);
      },
      { transport: { interceptors } },
    );
}

export function bytes(n: number): Uint8Array<ArrayBuffer> {
  return Uint8Array.from({ length: n }, (_, i) => (i * 7 + 3) % 251);
}
