"""litmus, the WebDAV compliance suite (Debian package `litmus`), against `flowdock up`'s /dav/ (issue 20, Done
when): the suites basic, copymove, props, locks and http must all pass. A test that cannot pass by design would be
listed in EXPECTED_FAILURES with its RFC reason and asserted to be the only failure; there is none."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.dav import Dav
from tests.support.mesh import Running

SUITES = ("basic", "copymove", "props", "locks", "http")
#: suite -> {test name: why it cannot pass by design}
EXPECTED_FAILURES: dict[str, dict[str, str]] = {}

SUMMARY = re.compile(r"<- summary for `(\w+)': of (\d+) tests run: (\d+) passed, (\d+) failed")
RESULT = re.compile(r"^\s*\d+\.\s+(\S+?)\.*\s+(pass|FAIL|WARNING|SKIPPED)", re.MULTILINE)


def litmus() -> str:
    path = shutil.which("litmus")
    if path is None:
        if os.environ.get("FLOWDOCK_REQUIRE_SERVERS") == "1":
            pytest.fail("litmus is not installed (apt-get install -y litmus; .ci/run does)")
        pytest.skip("litmus is not installed (apt-get install -y litmus)")
    return path


def run_litmus(mesh: Running, folder: Path) -> str:
    dav = Dav(mesh)
    _, secret = dav.app_password("litmus")
    proc = subprocess.run(
        [litmus(), f"{mesh.url}/dav/", dav.email, secret],
        cwd=folder,
        env={**os.environ, "TESTS": " ".join(SUITES)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    return proc.stdout + proc.stderr


def test_litmus_suites_pass(dav_mesh: Running, tmp_path: Path) -> None:
    out = run_litmus(dav_mesh, tmp_path)
    summaries = {m[1]: (int(m[2]), int(m[3]), int(m[4])) for m in SUMMARY.finditer(out)}
    print(out)  # the per-test lines, for the log
    for suite in SUITES:
        assert suite in summaries, f"litmus did not run {suite}:\n{out[-3000:]}"
    failed: dict[str, set[str]] = {}
    current = ""
    for line in out.splitlines():
        if line.startswith("-> running `"):
            current = line.split("`", 1)[1].split("'", 1)[0]
        m = RESULT.match(line)
        if m and m[2] == "FAIL":
            failed.setdefault(current, set()).add(m[1])
    for suite in SUITES:
        ran, passed, nfailed = summaries[suite]
        expected = set(EXPECTED_FAILURES.get(suite, {}))
        assert failed.get(suite, set()) == expected, f"{suite}: {ran} run, {passed} passed, failed {failed.get(suite)}"
        assert nfailed == len(expected)
        assert ran == passed + nfailed
        assert ran > 0
