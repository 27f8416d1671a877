"""The README's REST walk-through works as written (against a `flowdock up` on a free port)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.mesh import Running

README = Path(__file__).resolve().parents[2] / "README.md"


def rest_example() -> str:
    text = README.read_text()
    start = text.index("# REST (JSON by the proto3 mapping")
    return text[start : text.index("```", start)]


@pytest.mark.skipif(shutil.which("curl") is None, reason="the README example uses curl")
@pytest.mark.parametrize("mesh", ["sqlite"], indirect=True)  # one backend is enough for the walk-through
def test_readme_rest_example_runs(mesh: Running) -> None:
    script = rest_example().replace("localhost:8080", mesh.host_port).replace("flowdock-data/", f"{mesh.data_dir}/")
    script = script.replace("ada@example.org", "readme@example.org")
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert '"name":"notes.txt"' in result.stdout
    assert "UPLOAD_STATE_COMPLETED" in result.stdout
