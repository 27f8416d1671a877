"""The backup manifest and `verify` on folders made here (no server): what counts as complete and intact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flowdock_runtime.backup import MANIFEST, BackupError, Manifest, copy_hashed, verify


def make_backup(folder: Path) -> Manifest:
    source = folder.parent / "source.bin"
    source.write_bytes(b"ciphertext" * 1000)
    manifest = Manifest(backend="sqlite", created="2026-12-03T00:00:00+00:00")
    for rel in ("databases/auth.sqlite", "blobs/ab/cd/abcdef"):
        manifest.add(rel, *copy_hashed(source, folder / rel))
    manifest.blobs = 1
    manifest.write(folder)
    return manifest


def test_a_fresh_backup_verifies(tmp_path: Path) -> None:
    written = make_backup(tmp_path / "b")
    read, problems = verify(tmp_path / "b", show=False)
    assert problems == []
    assert read.artefacts == written.artefacts and read.blobs == 1
    assert not (tmp_path / "b" / (MANIFEST + ".tmp")).exists()


def test_changed_missing_and_unlisted_files_are_problems(tmp_path: Path) -> None:
    make_backup(tmp_path / "b")
    blob = tmp_path / "b" / "blobs/ab/cd/abcdef"
    data = bytearray(blob.read_bytes())
    data[5] ^= 0xFF
    blob.write_bytes(bytes(data))
    (tmp_path / "b" / "databases/auth.sqlite").unlink()
    (tmp_path / "b" / "stray.txt").write_text("?")
    _, problems = verify(tmp_path / "b", show=False)
    assert any(p.startswith("blobs/ab/cd/abcdef: SHA-256") for p in problems)
    assert "databases/auth.sqlite: missing" in problems
    assert "stray.txt: not in the manifest" in problems


def test_a_manifest_naming_a_path_outside_the_backup_is_a_problem(tmp_path: Path) -> None:
    make_backup(tmp_path / "b")
    data = json.loads((tmp_path / "b" / MANIFEST).read_text())
    data["artefacts"]["../outside"] = {"size": 1, "sha256": "0" * 64}
    (tmp_path / "b" / MANIFEST).write_text(json.dumps(data))
    _, problems = verify(tmp_path / "b", show=False)
    assert "../outside: not a path inside the backup" in problems


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "not a complete backup"), ("{", "is damaged"), ('{"format": "other"}', "unknown format")],
)
def test_no_or_a_bad_manifest_is_not_a_backup(tmp_path: Path, content: str | None, message: str) -> None:
    make_backup(tmp_path / "b")
    if content is None:
        (tmp_path / "b" / MANIFEST).unlink()
    else:
        (tmp_path / "b" / MANIFEST).write_text(content)
    with pytest.raises(BackupError, match=message):
        verify(tmp_path / "b", show=False)
