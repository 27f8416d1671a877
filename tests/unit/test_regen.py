"""The regeneration check catches a hand edit of generated code, Python and TypeScript alike."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TS_GEN = ROOT / "clients" / "ts" / "src" / "gen"
TS_PLUGIN = ROOT / "clients" / "node_modules" / ".bin" / "protoc-gen-es"

# The TypeScript half needs the npm workspace (`npm ci --prefix clients`); CI installs it and requires it.
need_node_modules = pytest.mark.skipif(
    not TS_PLUGIN.exists() and os.environ.get("FLOWDOCK_REQUIRE_SERVERS") != "1",
    reason="clients/node_modules missing: run `npm ci --prefix clients`",
)


def run_check(gen_dir: Path, ts_dir: Path = TS_GEN) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "tools/gen.py", "--check", "--gen-dir", str(gen_dir), "--ts-dir", str(ts_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@need_node_modules
def test_committed_generated_code_is_current() -> None:
    result = run_check(ROOT / "gen")
    assert result.returncode == 0, result.stdout + result.stderr


@need_node_modules
def test_hand_edit_is_caught(tmp_path: Path) -> None:
    copy = tmp_path / "gen"
    shutil.copytree(ROOT / "gen", copy, ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / "python" / "flowdock" / "storage" / "v1" / "storage_pb2.py"
    target.write_text(target.read_text() + "\n# hand edit\n")
    result = run_check(copy)
    assert result.returncode == 1
    assert "storage_pb2.py" in result.stdout


@need_node_modules
def test_hand_edit_of_typescript_is_caught(tmp_path: Path) -> None:
    copy = tmp_path / "ts"
    shutil.copytree(TS_GEN, copy)
    target = copy / "flowdock" / "storage" / "v1" / "storage_pb.ts"
    target.write_text(target.read_text() + "\n// hand edit\n")
    (copy / "flowdock" / "auth" / "v1" / "auth_pb.ts").unlink()
    result = run_check(ROOT / "gen", copy)
    assert result.returncode == 1
    assert "clients/ts/src/gen/flowdock/storage/v1/storage_pb.ts" in result.stdout
    assert "auth_pb.ts (only in one tree)" in result.stdout


def test_missing_plugin_says_how_to_install(tmp_path: Path) -> None:
    """Without clients/node_modules the check fails and names the install command (it never skips silently)."""
    fake_root = tmp_path / "repo"
    shutil.copytree(ROOT / "tools", fake_root / "tools")
    shutil.copytree(ROOT / "protos", fake_root / "protos")
    shutil.copy(ROOT / "buf.yaml", fake_root / "buf.yaml")
    result = subprocess.run(
        [sys.executable, "tools/gen.py", "--check", "--gen-dir", str(ROOT / "gen"), "--ts-dir", str(TS_GEN)],
        cwd=fake_root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "npm ci --prefix clients" in result.stderr
