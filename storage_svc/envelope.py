"""The encrypted blob format, version 1: pure functions from keys and bytes to bytes (no files, no keyring).

A blob file is a fixed-size header followed by segments of AES-256-GCM ciphertext::

    header (256 bytes) | segment 0 | segment 1 | ... | segment n-1 (final)
    segment i = nonce (12, random) | ciphertext (S bytes; the final one 0..S-1) | GCM tag (16)

Every segment but the last holds exactly S plaintext bytes (S, the segment size, is in the header); the last
one holds 0..S-1 and is the only one sealed with the final flag, so a blob of n*S bytes ends with an empty
final segment. The plaintext size follows from the file size alone.

Each segment's associated data binds the format, the blob's random file id, the segment index and the final
flag: truncation, reordering, splicing segments between blobs and dropping the final segment all fail
authentication. Nonces are random per encryption (a rewritten segment gets a fresh one), and each data key
encrypts at most MAX_SEGMENTS segments plus a few journal records, far below the 2**32 random-nonce budget.

The 256-bit data key is random per blob and wrapped with AES-256-GCM by a key-encryption key (KEK) whose id is
in the header; the wrap's associated data is every header byte before the wrap nonce, and the padding must be
zero, so a changed header byte is detected too. See docs/encryption.md.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import TypeAlias

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from flowdock_kernel.errors import DataLoss

MAGIC = b"FDBLOB\x00\x01"
HEADER_SIZE = 256
NONCE = 12
TAG = 16
OVERHEAD = NONCE + TAG
KEY_BYTES = 32
MAX_KEK_ID = 48
MIN_SEGMENT = 16
MAX_SEGMENT = 16 * 1024 * 1024
MAX_SEGMENTS = 2**31  # per data key; random 96-bit nonces stay far inside their 2**32 budget

# Header layout: magic | header size (u16) | reserved (u16, 0) | segment size (u32) | file id (16)
# | kek id length (u8) | kek id (48, zero padded) | wrap nonce (12) | wrapped key (32 + 16) | zero padding.
_FIXED = struct.Struct(">8sHHI16sB48s")
_WRAP_AT = _FIXED.size  # 81: every byte before this is authenticated by the key wrap
_END = _WRAP_AT + NONCE + KEY_BYTES + TAG  # 141
_WRAP_LABEL = b"flowdock/blob-v1/key-wrap"
_SEGMENT_LABEL = b"flowdock/blob-v1/segment"
_TAIL_LABEL = b"flowdock/blob-v1/staging-tail"


Buffer: TypeAlias = bytes | bytearray | memoryview


def damaged(what: str) -> DataLoss:
    return DataLoss(f"the file's stored content is damaged ({what}); nothing of it was returned")


@dataclass(frozen=True)
class Header:
    segment_size: int
    file_id: bytes
    kek_id: str
    wrap_nonce: bytes
    wrapped_key: bytes

    def _fixed(self) -> bytes:
        kek = self.kek_id.encode("ascii")
        return _FIXED.pack(MAGIC, HEADER_SIZE, 0, self.segment_size, self.file_id, len(kek), kek)

    def pack(self) -> bytes:
        raw = self._fixed() + self.wrap_nonce + self.wrapped_key
        return raw + bytes(HEADER_SIZE - len(raw))

    def unwrap(self, kek: AESGCM) -> bytes:
        """The data key, or DataLoss if the header was changed (or this is not the KEK that wrapped it)."""
        try:
            key = kek.decrypt(self.wrap_nonce, self.wrapped_key, _WRAP_LABEL + self._fixed())
        except InvalidTag:
            raise damaged(f"header does not authenticate under key-encryption key {self.kek_id!r}") from None
        return key

    def rewrap(self, old_kek: AESGCM, new_kek_id: str, new_kek: AESGCM) -> Header:
        """The same blob's header with its data key wrapped by another KEK (content untouched)."""
        return wrap(self.unwrap(old_kek), new_kek_id, new_kek, self.segment_size, self.file_id)


def check_kek_id(kek_id: str) -> str:
    if not (0 < len(kek_id) <= MAX_KEK_ID and kek_id.isascii() and kek_id.isprintable()):
        raise ValueError(f"a key-encryption key id must be 1..{MAX_KEK_ID} printable ASCII characters")
    return kek_id


def check_segment_size(segment_size: int) -> int:
    if not MIN_SEGMENT <= segment_size <= MAX_SEGMENT:
        raise ValueError(f"segment size must be between {MIN_SEGMENT} and {MAX_SEGMENT} bytes")
    return segment_size


def wrap(data_key: bytes, kek_id: str, kek: AESGCM, segment_size: int, file_id: bytes) -> Header:
    partial = Header(check_segment_size(segment_size), file_id, check_kek_id(kek_id), b"", b"")
    nonce = os.urandom(NONCE)
    return Header(segment_size, file_id, kek_id, nonce, kek.encrypt(nonce, data_key, _WRAP_LABEL + partial._fixed()))


def new_header(kek_id: str, kek: AESGCM, segment_size: int) -> tuple[Header, bytes]:
    """A header for a new blob: fresh random data key and file id. Returns the header and the data key."""
    data_key = AESGCM.generate_key(bit_length=256)
    return wrap(data_key, kek_id, kek, segment_size, os.urandom(16)), data_key


def parse_header(raw: bytes) -> Header:
    """Structure only (the key wrap authenticates the rest); DataLoss if it is not a v1 header."""
    if len(raw) < HEADER_SIZE:
        raise damaged("header truncated")
    magic, size, reserved, segment_size, file_id, kek_len, kek = _FIXED.unpack_from(raw)
    if magic != MAGIC or size != HEADER_SIZE or reserved != 0:
        raise damaged("not a FlowDock encrypted blob, or an unknown format version")
    if not (0 < kek_len <= MAX_KEK_ID) or any(kek[kek_len:]) or any(raw[_END:HEADER_SIZE]):
        raise damaged("header fields out of range")
    if not MIN_SEGMENT <= segment_size <= MAX_SEGMENT:
        raise damaged("segment size out of range")
    try:
        kek_id = kek[:kek_len].decode("ascii")
    except UnicodeDecodeError:
        raise damaged("header key id") from None
    return Header(
        segment_size, file_id, kek_id, bytes(raw[_WRAP_AT : _WRAP_AT + NONCE]), bytes(raw[_WRAP_AT + NONCE : _END])
    )


# -- geometry -----------------------------------------------------------------------------------------------


def stride(segment_size: int) -> int:
    """Stored bytes of a full segment."""
    return segment_size + OVERHEAD


def segment_offset(segment_size: int, index: int) -> int:
    return HEADER_SIZE + index * stride(segment_size)


def stored_size(segment_size: int, plaintext_size: int) -> int:
    full, rest = divmod(plaintext_size, segment_size)
    return segment_offset(segment_size, full) + OVERHEAD + rest


def plaintext_size(segment_size: int, file_size: int) -> int:
    """Plaintext size of a committed blob from its file size; DataLoss if no blob can have that size."""
    body = file_size - HEADER_SIZE
    full, rest = divmod(body, stride(segment_size))
    if body < OVERHEAD or rest < OVERHEAD:
        raise damaged("truncated")
    return full * segment_size + rest - OVERHEAD


def last_index(segment_size: int, size: int) -> int:
    """Index of the final segment of a blob of `size` plaintext bytes (it holds size % segment_size bytes)."""
    index = size // segment_size
    if index >= MAX_SEGMENTS:
        raise ValueError(f"a blob may have at most {MAX_SEGMENTS} segments")
    return index


# -- segments -----------------------------------------------------------------------------------------------


def segment_aad(file_id: bytes, index: int, final: bool) -> bytes:
    return _SEGMENT_LABEL + file_id + struct.pack(">QB", index, 1 if final else 0)


def seal_into(aead: AESGCM, file_id: bytes, index: int, final: bool, plaintext: Buffer, out: memoryview) -> int:
    """Encrypt one segment into `out` (at least len(plaintext) + OVERHEAD bytes); returns the bytes written."""
    if index >= MAX_SEGMENTS:
        raise ValueError(f"a blob may have at most {MAX_SEGMENTS} segments")
    nonce = os.urandom(NONCE)
    n = len(plaintext) + OVERHEAD
    out[:NONCE] = nonce
    aead.encrypt_into(nonce, plaintext, segment_aad(file_id, index, final), out[NONCE:n])
    return n


def seal(aead: AESGCM, file_id: bytes, index: int, final: bool, plaintext: Buffer) -> bytes:
    out = bytearray(len(plaintext) + OVERHEAD)
    seal_into(aead, file_id, index, final, plaintext, memoryview(out))
    return bytes(out)


def open_into(aead: AESGCM, file_id: bytes, index: int, final: bool, stored: Buffer, out: memoryview) -> int:
    """Authenticate and decrypt one stored segment into `out`; DataLoss (and `out` must be discarded) if damaged."""
    n = len(stored) - OVERHEAD
    if n < 0 or len(out) < n:
        raise damaged(f"segment {index} truncated")
    try:
        aead.decrypt_into(stored[:NONCE], stored[NONCE:], segment_aad(file_id, index, final), out[:n])
    except InvalidTag:
        raise damaged(f"segment {index} does not authenticate") from None
    return n


def open_segment(aead: AESGCM, file_id: bytes, index: int, final: bool, stored: Buffer) -> bytes:
    out = bytearray(max(len(stored) - OVERHEAD, 0))
    open_into(aead, file_id, index, final, stored, memoryview(out))
    return bytes(out)


# -- staging tail journal -------------------------------------------------------------------------------------
# While an upload is open, its last, partial segment lives in a journal beside the staging file: two slots
# written alternately, each record = magic | seq (u64) | segment index (u64) | length (u32) | nonce | ct | tag.
# The slot not being written always holds the previous durable record, so a torn write loses nothing acknowledged.

_TAIL = struct.Struct(">4sQQI")
TAIL_MAGIC = b"FDTL"
TAIL_HEADER = _TAIL.size + NONCE


def tail_stride(segment_size: int) -> int:
    return TAIL_HEADER + segment_size + TAG


def seal_tail(aead: AESGCM, file_id: bytes, seq: int, index: int, plaintext: Buffer) -> bytes:
    head = _TAIL.pack(TAIL_MAGIC, seq, index, len(plaintext))
    nonce = os.urandom(NONCE)
    return head + nonce + aead.encrypt(nonce, plaintext, _TAIL_LABEL + file_id + head)


def open_tail(aead: AESGCM, file_id: bytes, raw: bytes) -> tuple[int, int, bytes] | None:
    """(seq, index, plaintext) of a journal record, or None if the slot is empty, torn or foreign."""
    if len(raw) < TAIL_HEADER + TAG:
        return None
    magic, seq, index, length = _TAIL.unpack_from(raw)
    if magic != TAIL_MAGIC or len(raw) < TAIL_HEADER + length + TAG:
        return None
    head = raw[: _TAIL.size]
    nonce = raw[_TAIL.size : TAIL_HEADER]
    try:
        plain = aead.decrypt(nonce, raw[TAIL_HEADER : TAIL_HEADER + length + TAG], _TAIL_LABEL + file_id + head)
    except InvalidTag:
        return None
    return seq, index, plain


# -- runs of segments (shared by the byte stores: storage_svc.blobstore on disk, storage_svc.s3store) ----------


def seal_blob(header: Header, aead: AESGCM, data: Buffer) -> bytearray:
    """A whole blob in memory: header, then every segment of `data`, the last one final (a small file's put)."""
    seg = header.segment_size
    last = last_index(seg, len(data))
    out = bytearray(stored_size(seg, len(data)))
    view, src = memoryview(out), memoryview(data)
    view[:HEADER_SIZE] = header.pack()
    pos = HEADER_SIZE
    for index in range(last + 1):
        pos += seal_into(aead, header.file_id, index, index == last, src[index * seg : (index + 1) * seg], view[pos:])
    return out


def seal_run(aead: AESGCM, file_id: bytes, segment_size: int, first: int, plaintext: Buffer, out: memoryview) -> int:
    """Seal whole, non-final segments `first`, `first + 1`, ... of `plaintext` (a multiple of the segment size)
    into `out`; returns the bytes written."""
    view = memoryview(plaintext)
    if len(view) % segment_size:
        raise ValueError("a run holds whole segments only")
    pos = 0
    for i in range(len(view) // segment_size):
        pos += seal_into(aead, file_id, first + i, False, view[i * segment_size : (i + 1) * segment_size], out[pos:])
    return pos


def open_run(
    aead: AESGCM, file_id: bytes, segment_size: int, first: int, stored: Buffer, start: int, out: memoryview
) -> None:
    """Plaintext [start, start + len(out)) into `out` from `stored`: the non-final segments `first`, `first + 1`,
    ... read already (they must cover the range). Every segment touched is authenticated (DataLoss, and `out`
    must be discarded, if one is damaged)."""
    st = stride(segment_size)
    end = start + len(out)
    src = memoryview(stored)
    if end <= start:
        return
    for i in range(start // segment_size, (end - 1) // segment_size + 1):
        chunk = src[(i - first) * st : (i - first + 1) * st]
        lo, hi = max(start, i * segment_size), min(end, (i + 1) * segment_size)
        if hi - lo == segment_size:
            open_into(aead, file_id, i, False, chunk, out[lo - start : hi - start])
        else:
            plain = open_segment(aead, file_id, i, False, chunk)
            out[lo - start : hi - start] = plain[lo - i * segment_size : hi - i * segment_size]


def units(segment_size: int, unit: int, offset: int, length: int) -> list[tuple[int, int]]:
    """[offset, offset + length) cut into pieces of about `unit` bytes; every piece after the first starts on a
    segment boundary, so no segment is decrypted twice."""
    out: list[tuple[int, int]] = []
    pos, end = offset, offset + length
    while pos < end:
        target = pos + unit
        if target < end and target - target % segment_size > pos:
            target -= target % segment_size
        out.append((pos, min(target, end) - pos))
        pos = min(target, end)
    return out
