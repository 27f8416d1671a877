"""The `flowdock` user commands driven as a user would: subprocesses against `flowdock up` (SQLite), each test with
its own config dir (FLOWDOCK_CONFIG_DIR) and account."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pty
import re
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pyotp
import pytest

from flowdock.auth.v1 import auth_pb2, auth_pb2_grpc
from flowdock_runtime.main import build_parser
from tests.support.accounts import PASSWORD
from tests.support.mesh import SCAN_OFF, Running, start_up, stop_up

MiB = 1024 * 1024


@dataclass
class User:
    """A registered account and a config dir: runs `flowdock` as that user."""

    server: Running
    home: Path
    email: str

    def __post_init__(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)

    def env(self) -> dict[str, str]:
        return {**os.environ, "FLOWDOCK_CONFIG_DIR": str(self.home / "config"), "FLOWDOCK_SERVER": self.server.url}

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "flowdock_runtime", *args]

    def run(self, *args: str, stdin: str = "", code: int | None = 0, cwd: Path | None = None) -> Any:
        proc = subprocess.run(
            self.argv(*args),
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env(),
            cwd=cwd or self.home,
            timeout=240,
            check=False,
        )
        assert "Traceback" not in proc.stderr, proc.stderr
        if code is not None:
            assert proc.returncode == code, (
                f"flowdock {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "--json").stdout)

    def login(self, *extra: str, code: int | None = 0) -> Any:
        return self.run("login", "--email", self.email, "--password-stdin", *extra, stdin=PASSWORD + "\n", code=code)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.argv(*args),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env(),
            cwd=self.home,
        )

    @property
    def credentials(self) -> Path:
        return self.home / "config" / "credentials.json"

    @property
    def state(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads((self.home / "config" / "uploads.json").read_text())
        except (OSError, ValueError):
            return {}
        return data

    def rest(self) -> httpx.Client:
        """A separate REST session of the same account (to look at the server's side of things)."""
        r = httpx.post(f"{self.server.url}/api/v1/auth/login", json={"email": self.email, "password": PASSWORD})
        assert r.status_code == 200, r.text
        token = r.json()["accessToken"]
        return httpx.Client(base_url=self.server.url, headers={"authorization": f"Bearer {token}"}, timeout=30)


def new_user(server: Running, tmp_path: Path, *, login: bool = True) -> User:
    email = f"cli{uuid.uuid4().hex[:10]}@example.org"
    r = httpx.post(f"{server.url}/api/v1/auth/register", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    user = User(server, tmp_path, email)
    if login:
        user.login()
    return user


def write(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        left = size
        while left:
            block = os.urandom(min(left, 4 * MiB))
            f.write(block)
            left -= len(block)
    return path


def digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(4 * MiB):
            h.update(block)
    return h.hexdigest()


def tree_of(root: Path) -> dict[str, str]:
    """relative path -> sha256 for files, "dir" for directories."""
    found: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            found[(Path(dirpath) / d).relative_to(root).as_posix()] = "dir"
        for f in filenames:
            found[(Path(dirpath) / f).relative_to(root).as_posix()] = digest(Path(dirpath) / f)
    return found


def enable_2fa(user: User) -> str:
    """`flowdock 2fa enable` as a person does it: read the secret it shows, type the app's code; the secret."""
    enable = user.popen("2fa", "enable")
    assert enable.stdout is not None and enable.stdin is not None
    secret = ""
    for line in enable.stdout:
        if m := re.search(r"secret: ([A-Z2-7]+)", line):
            secret = m.group(1)
            break
    assert secret, "no secret shown"
    enable.stdin.write(pyotp.TOTP(secret).now() + "\n")
    enable.stdin.flush()
    out, err = enable.communicate(timeout=60)
    assert enable.returncode == 0, err
    assert "Two-factor authentication is ON" in out and len(re.findall(r"^  \S+$", out, re.M)) == 10
    return secret


# -- login, 2FA, round trip -----------------------------------------------------------------------------------


def test_login_with_2fa_then_tree_round_trip_is_byte_exact(server: Running, tmp_path: Path) -> None:
    user = new_user(server, tmp_path)
    assert stat.S_IMODE(user.credentials.stat().st_mode) == 0o600
    assert json.loads(user.credentials.read_text())["refresh_token"]

    # Turn 2FA on through the CLI, typing the code computed from the secret it shows.
    secret = enable_2fa(user)

    # A fresh machine: without a code the login is refused, with one it works.
    user.credentials.unlink()
    refused = user.login(code=3)
    assert "--totp-code" in refused.stderr
    assert not user.credentials.exists()
    # The confirming code's time step is spent (replay refused): use the next step's code, which is within ±1.
    user.login("--totp-code", pyotp.TOTP(secret).at(time.time() + 30))
    me = user.json("whoami")["user"]
    assert me["email"] == user.email and me["totp_enabled"] is True

    # A directory tree of mixed sizes, with an empty directory.
    src = tmp_path / "src" / "photos"
    sizes = {"empty.bin": 0, "one.bin": 1, "2024/mib-plus-one.bin": MiB + 1, "2024/raw/big.bin": 20 * MiB + 7}
    for rel, size in sizes.items():
        write(src / rel, size)
    (src / "nothing here").mkdir()
    put = user.run("put", str(src), "/Backup/photos")
    assert "uploaded 4 file(s)" in put.stderr

    listed = {n["name"]: n for n in user.json("ls", "/Backup/photos")}
    assert listed.keys() == {"2024", "nothing here", "empty.bin", "one.bin"}
    assert listed["one.bin"]["size"] == 1 and listed["2024"]["is_folder"]
    tree = {e["path"]: e for e in user.json("tree", "/Backup")}
    for rel, size in sizes.items():
        assert tree[f"photos/{rel}"]["size"] == size
    human = user.run("ls", "/Backup/photos/2024").stdout
    assert "mib-plus-one.bin" in human and "1.0 MiB" in human

    restored = tmp_path / "restored"
    user.run("get", "/Backup/photos", str(restored))
    assert tree_of(restored) == tree_of(src)
    assert not list(restored.rglob("*.flowdock-part"))


# -- paths: one rule both ways (rclone's `copy`) --------------------------------------------------------------


def sample_tree(root: Path) -> Path:
    """Nested folders and files, an empty file, an empty folder at the top and one further down."""
    for rel, size in {"a.txt": 10, "empty.bin": 0, "sub/b.bin": 300 * 1024, "sub/deeper/c.txt": 5}.items():
        write(root / rel, size)
    (root / "sub" / "nothing").mkdir()
    (root / "hollow").mkdir()
    return root


@pytest.mark.parametrize("local_exists", [False, True], ids=["Y-absent", "Y-existing"])
@pytest.mark.parametrize("remote_exists", [False, True], ids=["D-absent", "D-existing"])
def test_put_then_get_gives_back_the_same_tree_whether_or_not_the_destinations_exist(
    server: Running, tmp_path: Path, remote_exists: bool, local_exists: bool
) -> None:
    user = new_user(server, tmp_path / "home")
    x = sample_tree(tmp_path / "X")
    if remote_exists:
        user.run("mkdir", "-p", "/Deep/D")
    user.run("put", str(x), "/Deep/D")  # when absent, /Deep is missing too: both are created
    assert {e["path"] for e in user.json("tree", "/Deep/D")} == set(tree_of(x))  # X's content, not X inside D
    y = tmp_path / "out" / "Y"
    if local_exists:
        y.mkdir(parents=True)
    user.run("get", "/Deep/D", str(y))
    assert tree_of(y) == tree_of(x)

    # The same words again land in the same place (they do not nest one level deeper now that both exist).
    refused = user.run("put", str(x), "/Deep/D", code=5)
    assert "already exists" in refused.stderr and "--overwrite" in refused.stderr
    user.run("put", str(x), "/Deep/D", "--overwrite")
    user.run("get", "/Deep/D", str(y), "--overwrite")
    assert {e["path"] for e in user.json("tree", "/Deep/D")} == set(tree_of(x))
    assert tree_of(y) == tree_of(x)


def test_get_then_put_gives_back_the_same_tree_and_files_and_defaults_follow_the_rule(
    server: Running, tmp_path: Path
) -> None:
    user = new_user(server, tmp_path / "home")
    x = sample_tree(tmp_path / "X")
    user.run("put", str(x), "/R")
    y = tmp_path / "Y"
    user.run("get", "/R", str(y))
    user.run("mkdir", "/R2")
    user.run("put", str(y), "/R2")
    assert {(e["path"], e["size"]) for e in user.json("tree", "/R2")} == {
        (e["path"], e["size"]) for e in user.json("tree", "/R")
    }

    # A file goes into the destination folder, both ways (created if missing).
    user.run("put", str(x / "a.txt"), "/Files")
    assert [n["name"] for n in user.json("ls", "/Files")] == ["a.txt"]
    user.run("get", "/Files/a.txt", str(tmp_path / "dl"))
    assert (tmp_path / "dl" / "a.txt").read_bytes() == (x / "a.txt").read_bytes()

    # Without a destination a source keeps its name: `put X` is `put X /X`, `get /X` is `get /X ./X`.
    user.run("put", "X", cwd=tmp_path)
    assert {e["path"] for e in user.json("tree", "/X")} == set(tree_of(x))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    user.run("get", "/X", cwd=elsewhere)
    assert tree_of(elsewhere / "X") == tree_of(x)
    user.run("get", "/X/a.txt", cwd=elsewhere)
    assert (elsewhere / "a.txt").read_bytes() == (x / "a.txt").read_bytes()


# -- interruptions --------------------------------------------------------------------------------------------


def committed(user: User, upload_id: str) -> int:
    with user.rest() as c:
        r = c.get(f"/api/v1/uploads/{upload_id}")
        assert r.status_code == 200, r.text
        return int(r.json()["committedSize"])


def wait_for_bytes(user: User, proc: subprocess.Popen[str], *, at_least: int = 1) -> str:
    """The upload id of the CLI's running upload, once the server has committed some bytes of it."""
    deadline = time.monotonic() + 120
    upload_id = ""
    with user.rest() as c:
        while time.monotonic() < deadline:
            assert proc.poll() is None, "the upload finished before it could be interrupted"
            if not upload_id and user.state:
                upload_id = next(iter(user.state.values()))["upload_id"]
            if upload_id:
                r = c.get(f"/api/v1/uploads/{upload_id}")
                if r.status_code == 200 and int(r.json()["committedSize"]) >= at_least:
                    return upload_id
            time.sleep(0.02)
    raise AssertionError("no committed bytes in time")


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT], ids=["sigkill", "ctrl-c"])
def test_interrupted_256_mib_upload_resumes_from_the_committed_offset(
    server: Running, tmp_path: Path, how: signal.Signals
) -> None:
    user = new_user(server, tmp_path)
    big = write(tmp_path / "big.bin", 256 * MiB)
    proc = user.popen("put", str(big), "/Big")
    upload_id = wait_for_bytes(user, proc)
    proc.send_signal(how)
    _, err = proc.communicate(timeout=60)
    if how == signal.SIGINT:
        assert proc.returncode == 130, err
        assert "--resume" in err and "Traceback" not in err
    else:
        assert proc.returncode == -signal.SIGKILL
    entry = next(iter(user.state.values()))
    assert entry["upload_id"] == upload_id and entry["size"] == 256 * MiB and entry["sha256"] == digest(big)
    offset = committed(user, upload_id)
    assert 0 < offset < 256 * MiB

    resumed = user.run("put", str(big), "/Big", "--resume")
    m = re.search(r"resuming big\.bin from byte (\d+) of (\d+)", resumed.stderr)
    assert m, resumed.stderr
    assert int(m.group(1)) == offset and int(m.group(2)) == 256 * MiB
    assert user.state == {}  # done: nothing left to resume

    nodes = user.json("ls", "/Big")
    assert [(n["name"], n["size"], n["sha256"]) for n in nodes] == [("big.bin", 256 * MiB, digest(big))]
    back = tmp_path / "back"
    user.run("get", "/Big/big.bin", str(back))
    assert digest(back / "big.bin") == digest(big)
    user.run("rm", "-r", "/Big")
    user.run("trash", "empty")


def test_ctrl_c_during_download_leaves_no_partial_file(server: Running, tmp_path: Path) -> None:
    user = new_user(server, tmp_path)
    big = write(tmp_path / "big.bin", 192 * MiB)
    user.run("put", str(big), "/")
    out = tmp_path / "out"
    out.mkdir()
    proc = user.popen("get", "/big.bin", str(out))
    part = out / ".big.bin.flowdock-part"
    deadline = time.monotonic() + 60
    while not (part.exists() and part.stat().st_size > 0):
        assert proc.poll() is None and time.monotonic() < deadline, "download ended before the interrupt"
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "no partial file" in err
    assert list(out.iterdir()) == []

    # With --resume the part file stays, and the next run continues it.
    proc = user.popen("get", "/big.bin", str(out), "--resume")
    while not (part.exists() and part.stat().st_size > 0):
        assert proc.poll() is None and time.monotonic() < deadline + 60, "download ended before the interrupt"
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "--resume" in err, err
    kept = part.stat().st_size
    assert 0 < kept < 192 * MiB
    again = user.run("get", "/big.bin", str(out), "--resume")
    m = re.search(r"resuming \S*big\.bin from byte (\d+) of (\d+)", again.stderr)
    assert m and int(m.group(1)) == kept, again.stderr
    assert digest(out / "big.bin") == digest(big) and not part.exists()
    user.run("rm", "/big.bin")
    user.run("trash", "empty")


def wait_until_bindable(port: int) -> None:
    """The crashed Envoy's connections sit in TIME_WAIT on its port for up to 60 s, and the gateway's start-up
    check binds without SO_REUSEADDR: wait for them to clear."""
    deadline = time.monotonic() + 90
    while True:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
                return
            except OSError:
                assert time.monotonic() < deadline, f"port {port} stayed busy"
        time.sleep(0.5)


def test_network_drop_mid_upload_then_resume(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    """The whole server crashes (every process SIGKILLed) during an upload and comes back on the same data dir
    and port: the CLI fails with one line, and `--resume` continues from what the server had committed."""
    data = tmp_path_factory.mktemp("cli-crash")
    running = start_up(data, "sqlite", extra_env=SCAN_OFF)
    crashed: Running | None = None
    port = running.url.rsplit(":", 1)[1]
    try:
        user = new_user(running, tmp_path)
        big = write(tmp_path / "big.bin", 160 * MiB)
        proc = user.popen("put", str(big), "/Crash")
        upload_id = wait_for_bytes(user, proc, at_least=8 * MiB)
        for pid in running.pids.values():  # each child leads its own process group (Envoy runs below a wrapper)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        running.proc.kill()
        running.proc.communicate()
        crashed = running
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 7, err
        assert err.count("\n") == 1 and err.startswith("error: ") and "resume" in err
        (data / "run" / "up.json").unlink()
        wait_until_bindable(int(port))
        running = start_up(data, "sqlite", extra_env=SCAN_OFF, args=["--port", port])
        offset = committed(user, upload_id)
        assert offset >= 8 * MiB
        resumed = user.run("put", str(big), "/Crash", "--resume")
        m = re.search(r"resuming big\.bin from byte (\d+)", resumed.stderr)
        assert m and int(m.group(1)) == offset, resumed.stderr
        back = tmp_path / "back"
        user.run("get", "/Crash/big.bin", str(back))
        assert digest(back / "big.bin") == digest(big)
    finally:
        if running is not crashed:
            code, err = stop_up(running)
            assert code == 0, err


# -- bad input ------------------------------------------------------------------------------------------------


def test_wrong_password_and_a_dead_session_ask_to_log_in(server: Running, tmp_path: Path) -> None:
    user = new_user(server, tmp_path, login=False)
    wrong = user.run("login", "--email", user.email, "--password-stdin", stdin="not the password\n", code=3)
    assert wrong.stderr.strip() == "error: email or password is incorrect"
    assert not user.credentials.exists()
    not_yet = user.run("ls", code=3)
    assert "not logged in" in not_yet.stderr and "flowdock login" in not_yet.stderr

    user.login()
    saved = user.credentials.read_text()
    user.run("logout")
    assert not user.credentials.exists()
    user.credentials.write_text(saved)  # a refresh token whose session was ended (revoked)
    dead = user.run("ls", code=3)
    assert "log in again" in dead.stderr and "flowdock login" in dead.stderr

    # A session revoked from another device.
    user.login()
    other = User(server, tmp_path / "laptop", user.email)
    other.login()
    mine = [s for s in other.json("sessions", "ls") if not s["current"]]
    assert len(mine) == 1
    other.run("sessions", "revoke", mine[0]["id"])
    assert "flowdock login" in user.run("whoami", code=3).stderr
    other.run("whoami")


def test_bad_local_and_remote_paths_and_existing_destinations(server: Running, tmp_path: Path) -> None:
    user = new_user(server, tmp_path)
    missing = user.run("put", str(tmp_path / "nope.txt"), "/", code=4)
    assert missing.stderr.strip() == f"error: {tmp_path / 'nope.txt'}: no such local file or directory"
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    assert "not a regular file" in user.run("put", str(fifo), "/", code=4).stderr
    if os.geteuid() != 0:  # root reads everything
        secret = write(tmp_path / "secret.bin", 10)
        secret.chmod(0)
        assert "permission denied" in user.run("put", str(secret), "/", code=4).stderr.lower()
        locked = tmp_path / "locked"
        write(locked / "a.bin", 3)
        locked.chmod(0)
        assert "permission denied" in user.run("put", str(locked), "/", code=4).stderr.lower()
        locked.chmod(0o700)

    assert user.run("ls", "/no/such/folder", code=4).stderr.strip() == "error: /no: no such file or folder"
    assert "no such file" in user.run("get", "/nothing.txt", code=4).stderr
    assert "no such file" in user.run("rm", "/nothing.txt", code=4).stderr

    note = tmp_path / "note.txt"
    note.write_text("first")
    user.run("put", str(note), "/Docs")
    note.write_text("second, longer")
    again = user.run("put", str(note), "/Docs", code=5)
    assert "already exists" in again.stderr and "--overwrite" in again.stderr
    user.run("put", str(note), "/Docs", "--overwrite")
    versions = user.json("versions", "/Docs/note.txt")
    assert [v["number"] for v in versions] == [2, 1] and versions[0]["current"]

    here = tmp_path / "here"
    local = here / "note.txt"
    here.mkdir()
    local.write_text("mine")
    refused = user.run("get", "/Docs/note.txt", str(here), code=5)
    assert "already exists" in refused.stderr and "--overwrite" in refused.stderr
    assert local.read_text() == "mine"
    user.run("get", "/Docs/note.txt", str(here), "--overwrite")
    assert local.read_text() == "second, longer"
    user.run("versions", "/Docs/note.txt", "--restore", "1")
    user.run("get", "/Docs/note.txt", str(here), "--overwrite")
    assert local.read_text() == "first"
    not_a_dir = user.run("get", "/Docs/note.txt", str(local), code=5)
    assert "exists and is not a directory" in not_a_dir.stderr and local.read_text() == "first"


# -- the other commands ---------------------------------------------------------------------------------------


def test_tree_commands_trash_search_quota_and_json(server: Running, tmp_path: Path) -> None:
    user = new_user(server, tmp_path)
    user.run("mkdir", "-p", "/Work/2025/q1")
    assert user.run("mkdir", "/Work", code=5).stderr.startswith("error: ")
    f = write(tmp_path / "report.pdf", 1000)
    user.run("put", str(f), "/Work/2025")
    user.run("cp", "/Work/2025/report.pdf", "/Work/2025/q1")
    user.run("mv", "/Work/2025/report.pdf", "/Work/final.pdf")
    assert sorted(n["name"] for n in user.json("ls", "/Work")) == ["2025", "final.pdf"]
    user.run("mv", "/Work/final.pdf", "/Work/2025")
    assert [n["name"] for n in user.json("ls", "/Work/2025")] == ["q1", "final.pdf"]  # folders first

    found = user.json("search", "report")
    assert [r["path"] for r in found] == ["/Work/2025/q1/report.pdf"]
    assert "folder" in user.run("rm", "/Work/2025", code=1).stderr
    user.run("rm", "-r", "/Work/2025")
    trash = user.json("trash", "ls")
    assert [e["node"]["name"] for e in trash] == ["2025"] and trash[0]["size"] == 2000
    assert user.json("quota")["trash"] == 2000
    user.run("trash", "restore", "2025")
    assert user.json("ls", "/Work")[0]["name"] == "2025"
    user.run("rm", "/Work/2025/final.pdf")
    assert "freed" in user.run("trash", "empty").stderr
    assert user.json("quota")["used"] == 1000
    assert user.json("share", "ls") == []
    human = user.run("quota").stdout
    assert "used" in human and "limit" in human


def test_admin_users_over_the_api(server: Running, tmp_path: Path) -> None:
    admin_email = f"admin{uuid.uuid4().hex[:8]}@example.org"
    subprocess.run(
        [*CREATE_ADMIN, "--data-dir", str(server.data_dir), "--email", admin_email],
        input=PASSWORD + "\n",
        text=True,
        check=True,
        capture_output=True,
        env={**os.environ, **SCAN_OFF},
    )
    admin = User(server, tmp_path / "admin", admin_email)
    admin.login()
    someone = new_user(server, tmp_path / "someone")
    assert "administrator" in someone.run("admin", "users", "ls", code=6).stderr
    listed = admin.json("admin", "users", "ls", someone.email)
    assert [u["email"] for u in listed] == [someone.email]
    admin.run("admin", "users", "disable", someone.email)
    assert admin.json("admin", "users", "show", someone.email)["disabled"] is True
    assert someone.run("whoami", code=3).returncode == 3
    admin.run("admin", "users", "enable", someone.email)
    someone.login()  # disabling ended its sessions
    assert admin.json("admin", "users", "quota", someone.email, "--set", "1MiB")["limit"] == 1024 * 1024
    big = write(tmp_path / "2mib.bin", 2 * 1024 * 1024)
    over = someone.run("put", str(big), "/", code=8)
    assert "quota" in over.stderr.lower(), over.stderr
    admin.run("admin", "users", "quota", someone.email, "--set", "0")
    someone.run("put", str(big), "/")
    admin.run("admin", "users", "role", someone.email, "admin")
    assert admin.json("admin", "users", "show", someone.email)["role"] == "admin"


CREATE_ADMIN = [sys.executable, "-m", "flowdock_runtime", "admin", "create-user", "--admin", "--password-stdin"]


def _subparsers(parser: Any, prefix: list[str]) -> Iterator[list[str]]:
    yield prefix
    for action in parser._actions:
        if action.__class__.__name__ == "_SubParsersAction":
            for name, sub in action.choices.items():
                yield from _subparsers(sub, [*prefix, name])


def test_help_everywhere(capsys: pytest.CaptureFixture[str]) -> None:
    commands = list(_subparsers(build_parser(), []))
    for expected in (
        ["put"],
        ["get"],
        ["trash", "restore"],
        ["2fa", "enable"],
        ["admin", "users", "role"],
        ["app-passwords", "create"],
        ["app-passwords", "rm"],
    ):
        assert expected in commands
    for command in commands:
        with pytest.raises(SystemExit) as exited:
            build_parser().parse_args([*command, "--help"])
        assert exited.value.code == 0
        assert "usage: flowdock" in capsys.readouterr().out


def test_sessions_and_logout(server: Running, tmp_path: Path) -> None:
    user = new_user(server, tmp_path)
    second = User(server, tmp_path / "second", user.email)
    second.login()
    sessions = user.json("sessions", "ls")
    assert len(sessions) == 2 and sum(s["current"] for s in sessions) == 1
    assert "1 other" in user.run("sessions", "revoke", "--others").stderr
    assert second.run("ls", code=3).returncode == 3
    secret = enable_2fa(user)
    wrong = user.run("2fa", "disable", "--password-stdin", "--code", "000000", stdin=PASSWORD + "\n", code=6)
    assert wrong.stderr == "error: the code is not valid\n"
    code = pyotp.TOTP(secret).at(time.time() + 30)  # the enabling step is spent
    user.run("2fa", "disable", "--password-stdin", "--code", code, stdin=PASSWORD + "\n")
    assert user.json("whoami")["user"]["totp_enabled"] is False
    user.run("logout")
    assert not user.credentials.exists()
    shutil.rmtree(tmp_path / "second")


def test_app_passwords(server: Running, tmp_path: Path) -> None:
    user = new_user(server, tmp_path)
    made = user.run("app-passwords", "create", "laptop WebDAV")
    found = re.search(r"^  ([a-z2-7]{4}(?:-[a-z2-7]{4}){7})$", made.stdout, re.M)
    assert found, made.stdout
    secret = found.group(1)
    assert "shown this once" in made.stdout and "cannot be shown again" in made.stdout
    [listed] = user.json("app-passwords", "ls")
    assert listed["name"] == "laptop WebDAV" and listed["last_used"] is None and listed["created"]
    table = user.run("app-passwords", "ls").stdout
    assert "laptop WebDAV" in table and "never" in table and secret not in table
    kinds = {s["id"]: s["kind"] for s in user.json("sessions", "ls")}
    assert kinds[listed["id"]] == "app password" and sorted(kinds.values()) == ["app password", "login"]

    request = auth_pb2.AuthenticateBasicRequest(email=user.email, password=secret, client_address="192.0.2.5")
    with server.channel("auth", "dav_svc") as channel:  # as the WebDAV service asks, on every request
        basic = auth_pb2_grpc.AuthInternalServiceStub(channel)
        done = basic.AuthenticateBasic(request, timeout=30)
        assert done.session_id == listed["id"] and done.access_token.count(".") == 2
        assert user.json("app-passwords", "ls")[0]["last_used"] is not None
        gone = user.run("app-passwords", "rm", listed["id"])
        assert listed["id"] in gone.stderr
        with pytest.raises(grpc.RpcError) as refused:
            basic.AuthenticateBasic(request, timeout=30)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "app password" in (refused.value.details() or "")
    assert user.json("app-passwords", "ls") == []
    assert "not found" in user.run("app-passwords", "rm", listed["id"], code=4).stderr
    empty = user.run("app-passwords", "create", " ", code=1)
    assert "name" in empty.stderr and "required" in empty.stderr
    assert user.run("app-passwords", "--help").stdout.count("app password") >= 1


def test_shares_and_links(server: Running, tmp_path: Path) -> None:
    owner = new_user(server, tmp_path / "owner")
    friend = new_user(server, tmp_path / "friend")
    doc = write(tmp_path / "plan.txt", 321)
    owner.run("put", str(doc), "/Team")
    [made] = owner.json("share", "add", "/Team", friend.email, "--role", "downloader")
    assert made["grantee_email"] == friend.email and made["role"] == "downloader"
    assert "already" in owner.run("share", "add", "/Team", friend.email, code=5).stderr
    assert "no such" in owner.run("share", "add", "/Nope", friend.email, code=4).stderr
    assert [s["id"] for s in owner.json("share", "ls")] == [made["id"]]

    [incoming] = friend.json("share", "ls", "--incoming")
    assert incoming["id"] == made["id"] and incoming["node"]["name"] == "Team"
    assert [n["name"] for n in friend.json("ls", f"id:{incoming['node_id']}")] == ["plan.txt"]
    friend.run("get", f"id:{incoming['node_id']}", str(tmp_path / "copy"))
    assert (tmp_path / "copy" / "plan.txt").read_bytes() == doc.read_bytes()

    owner.run("share", "rm", made["id"])
    assert friend.json("share", "ls", "--incoming") == []
    assert friend.run("ls", f"id:{incoming['node_id']}", code=4).returncode == 4

    url = owner.run("link", "create", "/Team/plan.txt", "--expires", "7d", "--max-downloads", "2").stdout.strip()
    assert url.startswith(f"{server.url}/api/v1/public/links/")
    [link] = owner.json("link", "ls")
    assert link["permission"] == "download" and link["max_downloads"] == 2 and link["expires"]
    owner.run("link", "rm", link["id"])
    assert owner.json("link", "ls") == []
    assert "--expires" in owner.run("link", "create", "/Team", "--expires", "soon", code=1).stderr


def test_interactive_login_prompts_for_email_password_and_2fa_code(server: Running, tmp_path: Path) -> None:
    """On a terminal (a pty here), `flowdock login` asks for what it lacks, the 2FA code only when needed."""
    user = new_user(server, tmp_path)
    secret = enable_2fa(user)
    user.credentials.unlink()
    pid, master = pty.fork()
    if pid == 0:  # the child: its controlling terminal is the pty
        os.execvpe(sys.executable, user.argv("login"), user.env())  # noqa: S606 (no shell wanted)
    seen = b""

    def expect(prompt: bytes) -> None:
        nonlocal seen
        deadline = time.monotonic() + 60
        while prompt not in seen:
            assert time.monotonic() < deadline, seen
            if select.select([master], [], [], 0.5)[0]:
                try:
                    seen += os.read(master, 4096)
                except OSError:  # the child is gone
                    break
        assert prompt in seen, seen

    try:
        expect(b"Email: ")
        os.write(master, user.email.encode() + b"\n")
        expect(b"Password: ")
        os.write(master, PASSWORD.encode() + b"\n")
        expect(b"Two-factor code")
        os.write(master, pyotp.TOTP(secret).at(time.time() + 30).encode() + b"\n")
        expect(b"Logged in to")
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(master)
    assert os.waitstatus_to_exitcode(status) == 0, seen
    assert PASSWORD.encode() not in seen  # not echoed
    assert user.json("whoami")["user"]["email"] == user.email
