"""The regeneration check catches a hand edit of generated code."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_check(gen_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "tools/gen.py", "--check", "--gen-dir", str(gen_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_committed_generated_code_is_current() -> None:
    result = run_check(ROOT / "gen")
    assert result.returncode == 0, result.stdout + result.stderr


def test_hand_edit_is_caught(tmp_path: Path) -> None:
    copy = tmp_path / "gen"
    shutil.copytree(ROOT / "gen", copy, ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / "python" / "flowdock" / "storage" / "v1" / "storage_pb2.py"
    target.write_text(target.read_text() + "\n# hand edit\n")
    result = run_check(copy)
    assert result.returncode == 1
    assert "storage_pb2.py" in result.stdout
