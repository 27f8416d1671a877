// @flowdock/sdk: the public surface. Everything else is private to the package (import from here only).
export { createClient } from "./client";
export type { ClientOptions, FlowDockClient } from "./client";
export { FlowDockError } from "./errors";
export type { ErrorDetails, ErrorKind } from "./errors";
export type { LoginResult } from "./session";
export type {
  ConflictPolicy,
  LinkUploadOptions,
  LinkUploadResult,
  UploadOptions,
  UploadProgress,
  UploadRecord,
  UploadResult,
} from "./upload";
// The generated messages, enums and schemas, per package (authPb.User, storagePb.NodeSchema, ...); the ones an
// app renders most are also exported by name.
export * as authPb from "./gen/flowdock/auth/v1/auth_pb";
export * as storagePb from "./gen/flowdock/storage/v1/storage_pb";
export * as sharePb from "./gen/flowdock/share/v1/share_pb";
export { Role, type Session as DeviceSession, type User } from "./gen/flowdock/auth/v1/auth_pb";
export {
  NodeKind,
  OnConflict,
  OrderBy,
  UploadState,
  type Node,
  type Quota,
  type TrashEntry,
  type Upload,
  type Version,
} from "./gen/flowdock/storage/v1/storage_pb";
export { LinkPermission, ShareRole, type Link, type Share } from "./gen/flowdock/share/v1/share_pb";
export { Code } from "@connectrpc/connect";
