"""`flowdock up`'s supervision (flowdock_runtime.supervisor): the backoff policy, and the supervisor restarting
real (tiny) child processes with the clock in the test's hand. The real mesh under kill -9: tests/runtime/."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from flowdock_kernel.clock import FakeClock
from flowdock_runtime.supervisor import Backoff, Child, Supervisor, Watched, describe_exit


def test_backoff_doubles_from_half_a_second_to_the_cap_and_a_long_run_forgives() -> None:
    b = Backoff()
    assert [b.crashed(ran_for=1.0) for _ in range(9)] == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]
    assert b.looping and b.crashes == 9
    assert b.crashed(ran_for=59.0) == 30  # not long enough to count as recovered
    assert b.crashed(ran_for=60.0) == 0.5 and not b.looping  # stayed up a minute: a fresh start
    assert Backoff(initial=1, cap=5).crashed(0) == 1
    assert [Backoff().crashed(0) for _ in range(3)] == [0.5, 0.5, 0.5]  # each child has its own


def test_exits_are_described_by_code_or_signal() -> None:
    assert describe_exit(2) == "exit code 2"
    assert describe_exit(-9) == "killed by SIGKILL"
    assert describe_exit(-15) == "killed by SIGTERM"


def child(tmp_path: Path, name: str, code: str) -> Child:
    return Child(name, [sys.executable, "-c", code], {}, tmp_path / f"{name}.log")


def tick_until(sup: Supervisor, done: object, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not done():  # type: ignore[operator]
        assert time.monotonic() < deadline, "the supervisor never got there"
        sup.tick()
        time.sleep(0.01)


def test_a_crashing_child_is_restarted_with_backoff_and_the_others_keep_running(tmp_path: Path) -> None:
    ready = tmp_path / "flaky.json"
    # Exits with 3 on each start, until the test lets it come up (the file "ok" exists): then writes its ready file.
    flaky = child(
        tmp_path,
        "flaky",
        f"import pathlib, sys, time; p = pathlib.Path({str(tmp_path)!r});\n"
        "if not (p / 'ok').exists(): sys.exit(3)\n"
        "(p / 'flaky.json').write_text('{}'); time.sleep(60)",
    )
    steady = child(tmp_path, "steady", "import time; time.sleep(60)")
    lines: list[str] = []
    restarts: list[int] = []
    clock = FakeClock()
    flaky.start()
    steady.start()
    watched = [Watched(flaky, ready), Watched(steady, None)]
    sup = Supervisor(watched, clock, say=lines.append, on_restart=lambda: restarts.append(1))
    try:
        delays = []
        for attempt in range(1, 5):
            tick_until(sup, lambda: watched[0].restart_at is not None)
            assert watched[0].restart_at is not None
            delays.append(watched[0].restart_at - clock.monotonic())
            assert f"flaky crashed (exit code 3); restarting it in {delays[-1]:g} s" in lines[-1]
            assert ("crash-looping: 3 crashes in a row" in lines[-1]) == (attempt == 3)
            # Nothing restarts before its time.
            clock.advance(delays[-1] - 0.01)
            sup.tick()
            assert watched[0].restart_at is not None and len(restarts) == attempt - 1
            clock.advance(0.01)
            if attempt == 4:
                (tmp_path / "ok").touch()
            sup.tick()
            assert watched[0].restart_at is None and len(restarts) == attempt
        assert delays == [0.5, 1, 2, 4]
        tick_until(sup, lambda: "flaky is back" in lines[-1])
        assert steady.exited() is None and watched[1].restart_at is None  # untouched all along
        assert set(sup.pids) == {"flaky", "steady"} and sup.pids["steady"] == steady.proc.pid  # type: ignore[union-attr]
    finally:
        for c in (flaky, steady):
            c.stop(5)


def test_a_killed_child_takes_what_it_left_in_its_process_group_with_it(tmp_path: Path) -> None:
    # A wrapper whose own child (as Envoy under `python -m gateway serve`) would outlive it.
    wrapper = child(
        tmp_path,
        "wrapper",
        "import subprocess, sys, time;"
        f"p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
        f"open({str(tmp_path / 'grandchild')!r}, 'w').write(str(p.pid)); time.sleep(60)",
    )
    wrapper.start()
    sup = Supervisor([Watched(wrapper, None)], FakeClock(), say=lambda _: None)
    pidfile = tmp_path / "grandchild"
    deadline = time.monotonic() + 20
    while not pidfile.exists() or not pidfile.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    grandchild = int(pidfile.read_text())
    assert wrapper.proc is not None
    wrapper.proc.kill()
    tick_until(sup, lambda: sup.watched[0].restart_at is not None)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{grandchild}").exists() and "Z" not in Path(f"/proc/{grandchild}/stat").read_text().split()[2]:
        assert time.monotonic() < deadline, "the wrapper's child outlived it"
        time.sleep(0.01)


def test_a_child_that_cannot_even_be_started_is_retried_like_a_crash(tmp_path: Path) -> None:
    missing = Child("ghost", [str(tmp_path / "no-such-program")], {}, tmp_path / "ghost.log")
    lines: list[str] = []
    clock = FakeClock()
    sup = Supervisor([Watched(missing, None, restart_at=0.0)], clock, say=lines.append)
    sup.tick()
    assert "ghost crashed (could not start:" in lines[-1] and "restarting it in 0.5 s" in lines[-1]
    clock.advance(0.5)
    sup.tick()
    assert "restarting it in 1 s" in lines[-1]


def test_a_restart_runs_the_restart_command(tmp_path: Path) -> None:
    out = tmp_path / "argv"
    code = f"import sys; open({str(out)!r}, 'a').write(' '.join(sys.argv[1:]) + '\\n')"
    c = Child(
        "gw",
        [sys.executable, "-c", code, "wrapper"],
        {},
        tmp_path / "gw.log",
        restart_argv=[sys.executable, "-c", code, "envoy"],
    )
    clock = FakeClock()
    c.start()
    sup = Supervisor([Watched(c, None)], clock, say=lambda _: None)
    for _ in range(2):
        tick_until(sup, lambda: sup.watched[0].restart_at is not None)
        clock.advance(5)
        sup.tick()
    tick_until(sup, lambda: sup.watched[0].restart_at is not None)
    assert out.read_text().splitlines() == ["wrapper", "envoy", "envoy"]
