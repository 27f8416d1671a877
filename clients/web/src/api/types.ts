/** Plain shapes the pages use, so no page depends on generated protobuf classes. */

export type NodeKind = 'folder' | 'file';

export interface FileNode {
  id: string;
  parentId: string;
  name: string;
  kind: NodeKind;
  size: number;
  created: Date | undefined;
  modified: Date | undefined;
  contentType: string;
  sha256: string;
}

export interface Page<T> {
  items: T[];
  nextPageToken: string;
}

export type SortKey = 'name' | 'size' | 'modified';

export interface Quota {
  used: number;
  reserved: number;
  limit: number;
  trash: number;
  versions: number;
}

export interface FileVersion {
  id: string;
  number: number;
  size: number;
  sha256: string;
  created: Date | undefined;
  current: boolean;
}

export interface Me {
  id: string;
  email: string;
  displayName: string;
  totpEnabled: boolean;
}

export type LoginOutcome = { kind: 'ok' } | { kind: 'mfa'; mfaToken: string };

export type ErrorKind =
  | 'unauthenticated'
  | 'permission'
  | 'not_found'
  | 'conflict'
  | 'invalid'
  | 'quota'
  | 'too_large'
  | 'infected'
  | 'rate_limited'
  | 'unavailable'
  | 'precondition'
  | 'cancelled'
  | 'internal';
