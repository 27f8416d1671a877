"""The blob format on its own: key wrap, segment sealing, associated data, geometry, the staging journal."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from flowdock_kernel.errors import DataLoss
from storage_svc import envelope as env

SEG = 64


@pytest.fixture
def kek() -> AESGCM:
    return AESGCM(AESGCM.generate_key(bit_length=256))


def test_header_round_trip_and_fresh_key_per_blob(kek: AESGCM) -> None:
    h1, key1 = env.new_header("kek-1", kek, SEG)
    h2, key2 = env.new_header("kek-1", kek, SEG)
    assert len(key1) == 32 and key1 != key2  # a fresh 256-bit data key per blob
    assert h1.file_id != h2.file_id
    raw = h1.pack()
    assert len(raw) == env.HEADER_SIZE
    parsed = env.parse_header(raw)
    assert parsed == h1
    assert parsed.kek_id == "kek-1"  # the wrapping KEK's id travels with the wrapped key
    assert parsed.unwrap(kek) == key1
    assert key1 not in raw


def test_unwrap_with_another_kek_fails(kek: AESGCM) -> None:
    header, _ = env.new_header("kek-1", kek, SEG)
    with pytest.raises(DataLoss):
        header.unwrap(AESGCM(AESGCM.generate_key(bit_length=256)))


def test_every_header_byte_is_authenticated(kek: AESGCM) -> None:
    header, _ = env.new_header("kek-1", kek, SEG)
    raw = header.pack()
    for i in range(len(raw)):
        flipped = bytearray(raw)
        flipped[i] ^= 0x01
        with pytest.raises(DataLoss):
            env.parse_header(bytes(flipped)).unwrap(kek)


def test_rewrap_keeps_data_key_and_file_id(kek: AESGCM) -> None:
    header, key = env.new_header("kek-old", kek, SEG)
    new_kek = AESGCM(AESGCM.generate_key(bit_length=256))
    moved = header.rewrap(kek, "kek-new", new_kek)
    assert moved.kek_id == "kek-new" and moved.file_id == header.file_id and moved.segment_size == SEG
    assert env.parse_header(moved.pack()).unwrap(new_kek) == key
    with pytest.raises(DataLoss):
        moved.unwrap(kek)


def test_segment_round_trip_with_random_nonces() -> None:
    aead = AESGCM(AESGCM.generate_key(bit_length=256))
    fid = os.urandom(16)
    a = env.seal(aead, fid, 3, False, b"x" * SEG)
    b = env.seal(aead, fid, 3, False, b"x" * SEG)
    assert a[: env.NONCE] != b[: env.NONCE] and a != b  # the same segment sealed twice: new nonce
    assert len(a) == SEG + env.OVERHEAD
    assert env.open_segment(aead, fid, 3, False, a) == b"x" * SEG


@pytest.mark.parametrize(
    ("index", "final", "other_file"),
    [(4, False, False), (3, True, False), (3, False, True)],
    ids=["reordered", "final-flag", "spliced-from-another-blob"],
)
def test_aad_binds_index_final_flag_and_file(index: int, final: bool, other_file: bool) -> None:
    aead = AESGCM(AESGCM.generate_key(bit_length=256))
    fid = os.urandom(16)
    sealed = env.seal(aead, fid, 3, False, b"y" * SEG)
    with pytest.raises(DataLoss):
        env.open_segment(aead, os.urandom(16) if other_file else fid, index, final, sealed)


def test_flipped_ciphertext_bit_gives_no_plaintext() -> None:
    aead = AESGCM(AESGCM.generate_key(bit_length=256))
    fid = os.urandom(16)
    sealed = bytearray(env.seal(aead, fid, 0, True, b"secret" * 5))
    for i in range(len(sealed)):
        damaged = bytearray(sealed)
        damaged[i] ^= 0x80
        with pytest.raises(DataLoss):
            env.open_segment(aead, fid, 0, True, bytes(damaged))


def test_geometry_round_trip() -> None:
    for size in [0, 1, SEG - 1, SEG, SEG + 1, 3 * SEG, 3 * SEG + 5]:
        stored = env.stored_size(SEG, size)
        assert env.plaintext_size(SEG, stored) == size
        assert env.last_index(SEG, size) == size // SEG
    # Sizes no blob can have (a final segment shorter than its nonce and tag) are damage.
    for stored in [0, env.HEADER_SIZE, env.HEADER_SIZE + 27, env.HEADER_SIZE + env.stride(SEG) + 3]:
        with pytest.raises(DataLoss):
            env.plaintext_size(SEG, stored)


def test_tail_records_authenticate_or_are_ignored() -> None:
    aead = AESGCM(AESGCM.generate_key(bit_length=256))
    fid = os.urandom(16)
    rec = env.seal_tail(aead, fid, 7, 2, b"partial")
    assert env.open_tail(aead, fid, rec + bytes(40)) == (7, 2, b"partial")
    assert env.open_tail(aead, os.urandom(16), rec) is None
    torn = bytearray(rec)
    torn[-3] ^= 1
    assert env.open_tail(aead, fid, bytes(torn)) is None
    assert env.open_tail(aead, fid, b"") is None
    assert env.open_tail(aead, fid, bytes(100)) is None


def test_bad_parameters_refused(kek: AESGCM) -> None:
    with pytest.raises(ValueError, match="key id"):
        env.new_header("", kek, SEG)
    with pytest.raises(ValueError, match="key id"):
        env.new_header("k" * 49, kek, SEG)
    with pytest.raises(ValueError, match="segment size"):
        env.new_header("kek", kek, 8)
    with pytest.raises(DataLoss):
        env.parse_header(b"not a header" * 30)
