"""rclone (Debian package) with its webdav backend, vendor=other, against `flowdock up`'s /dav/ (issue 20, Done
when): copy a tree of mixed sizes up, `rclone check` finds no difference, copy it back byte-exact, and a second
`rclone sync` transfers nothing."""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.dav import Dav
from tests.support.mesh import Running

MiB = 1024 * 1024
#: name -> size: empty, tiny, around the dav service's 8 MiB chunk, names with spaces and accents.
TREE = {
    "empty.txt": 0,
    "one.bin": 1,
    "docs/readme.md": 2_000,
    "docs/Résumé final.pdf": 150_000,
    "photos/2024/a b.jpg": 3 * MiB + 17,
    "photos/2024/big.raw": 8 * MiB + 1,
    "photos/exact.bin": 8 * MiB,
}


def rclone() -> str:
    path = shutil.which("rclone")
    if path is None:
        if os.environ.get("FLOWDOCK_REQUIRE_SERVERS") == "1":
            pytest.fail("rclone is not installed (apt-get install -y rclone; .ci/run does)")
        pytest.skip("rclone is not installed (apt-get install -y rclone)")
    return path


def make_tree(root: Path) -> None:
    for rel, size in TREE.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(size))


def test_rclone_copy_check_and_sync(dav_mesh: Running, tmp_path: Path) -> None:
    exe = rclone()
    dav = Dav(dav_mesh)
    email = dav.email
    _, secret = dav.app_password("rclone")
    obscured = subprocess.run([exe, "obscure", secret], capture_output=True, text=True, check=True).stdout.strip()
    env = {
        **os.environ,
        "RCLONE_CONFIG": str(tmp_path / "rclone.conf"),
        "RCLONE_CONFIG_FD_TYPE": "webdav",
        "RCLONE_CONFIG_FD_URL": f"{dav_mesh.url}/dav/",
        "RCLONE_CONFIG_FD_VENDOR": "other",
        "RCLONE_CONFIG_FD_USER": email,
        "RCLONE_CONFIG_FD_PASS": obscured,
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([exe, *args], env=env, capture_output=True, text=True, timeout=600, check=False)
        assert proc.returncode == 0, f"rclone {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
        return proc

    src, back = tmp_path / "src", tmp_path / "back"
    make_tree(src)
    run("copy", str(src), "fd:Backup")
    run("check", str(src), "fd:Backup")
    run("copy", "fd:Backup", str(back))
    for rel in TREE:
        assert filecmp.cmp(src / rel, back / rel, shallow=False), rel
    again = run("sync", str(src), "fd:Backup", "-v", "--stats", "0")
    assert "Copied" not in again.stderr, again.stderr
    assert "Deleted" not in again.stderr, again.stderr
    # The REST API sees the same tree.
    names = {n["name"] for n in dav.rest.ok("GET", "/api/v1/folders/root/children")["nodes"]}
    assert "Backup" in names
