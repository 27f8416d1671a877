"""The monitoring files proven against a real Prometheus (Debian's `prometheus` and `promtool`, no download).

One `flowdock up` mesh (SQLite, scanning with a real clamd), one Prometheus started with the project's
deploy/prometheus/prometheus.yml (its targets pointed at the mesh, scraping every second) and a copy of
deploy/prometheus/alerts.yml whose `for:` durations are shortened (the expressions are the project's, unchanged).
Traffic goes through the gateway by REST, grpc-web and native gRPC: uploads that complete, fail their checksum and
carry a test virus, a download, a NOT_FOUND. Then:

- `promtool check config` and `promtool check rules` accept the project's files;
- every scrape target is up;
- every PromQL expression of the four dashboards and of the alert rules parses and returns series;
- the gateway tells REST, grpc-web and native gRPC apart, and storage counts the three upload outcomes;
- FlowDockServiceDown fires for share_svc once it stops answering (SIGSTOP: `flowdock up` keeps running, so the
  mesh can be stopped cleanly afterwards) and not before.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from flowdock.storage.v1 import storage_pb2, storage_pb2_grpc
from tests.e2e.protocols import GrpcWeb, native_channel
from tests.support.clamd import EICAR, need_clamd, running_clamd
from tests.support.mesh import REQUIRE_SERVERS, Running, flowdock_up, free_port

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
GRAFANA_DIR = REPO / "deploy" / "grafana"
DASHBOARD_TITLES = {"FlowDock Overview", "Service Health", "API Performance", "Error Rates"}
SERVICE_JOBS = ("auth", "storage", "share", "dav")
#: The test copy's `for:` (the project's are minutes long).
SHORT_FOR = "2s"
_COMPARISON = re.compile(r"\s(==|!=|>=|<=|>|<)\s+(-?[0-9.]+)\s*$")


def _need_prometheus() -> None:
    missing = [tool for tool in ("prometheus", "promtool") if shutil.which(tool) is None]
    if missing:
        why = f"{', '.join(missing)} not installed (apt-get install -y prometheus)"
        if REQUIRE_SERVERS:
            pytest.fail(f"{why} (FLOWDOCK_REQUIRE_SERVERS=1 forbids skipping)")
        pytest.skip(why)


# --------------------------------------------------------------------------------------------------------
# The files
# --------------------------------------------------------------------------------------------------------


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def dashboards() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in sorted((GRAFANA_DIR / "dashboards").glob("*.json"))}


def dashboard_queries() -> list[tuple[str, str]]:
    """(where, expr) of every target of every dashboard panel."""
    return [
        (f"{board['title']} / {panel['title']}", target["expr"])
        for board in dashboards().values()
        for panel in board["panels"]
        for target in panel["targets"]
    ]


def signal_side(expr: str) -> str:
    """An alert expression with its final comparison turned into `bool`: 0/1 for every series instead of only
    the ones beyond the threshold, so "returns series" holds whether or not the alert would fire now."""
    found = _COMPARISON.search(expr)
    assert found, f"alert expression does not end in '<comparison> <threshold>': {expr}"
    return f"{expr[: found.start()]} {found.group(1)} bool {found.group(2)}"


def test_promtool_accepts_config_and_rules() -> None:
    _need_prometheus()
    config = subprocess.run(
        ["promtool", "check", "config", str(PROMETHEUS_DIR / "prometheus.yml")], capture_output=True, text=True
    )
    assert config.returncode == 0, config.stdout + config.stderr
    assert "alerts.yml" in config.stdout  # the rule file is found and checked with the config
    rules = subprocess.run(
        ["promtool", "check", "rules", str(PROMETHEUS_DIR / "alerts.yml")], capture_output=True, text=True
    )
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in rules.stdout


def test_every_alert_has_a_runbook_line() -> None:
    operations = (REPO / "docs" / "operations.md").read_text()
    for rule in alert_rules():
        name = rule["alert"]
        assert rule["annotations"]["runbook"] == f"docs/operations.md#{name.lower()}", name
        assert re.search(rf"^#+ {name}$", operations, re.MULTILINE), f"docs/operations.md has no section {name}"
        assert rule["labels"]["severity"] in {"critical", "warning"}, name


def test_dashboards_are_well_formed_grafana_json() -> None:
    boards = dashboards()
    assert {b["title"] for b in boards.values()} == DASHBOARD_TITLES
    assert len({b["uid"] for b in boards.values()}) == len(boards)
    datasource = yaml.safe_load((GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml").read_text())
    (source,) = datasource["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    provider = yaml.safe_load((GRAFANA_DIR / "provisioning" / "dashboards" / "flowdock.yml").read_text())
    (dashboards_provider,) = provider["providers"]
    compose = (REPO / "docker-compose.yml").read_text()
    assert f"./deploy/grafana/dashboards:{dashboards_provider['options']['path']}:ro" in compose
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in compose
    for name, board in boards.items():
        assert isinstance(board["schemaVersion"], int) and board["panels"], name
        ids = [p["id"] for p in board["panels"]]
        assert len(set(ids)) == len(ids), f"{name}: panel ids repeat"
        occupied: set[tuple[int, int]] = set()
        for panel in board["panels"]:
            where = f"{name} / {panel['title']}"
            assert panel["type"] in {"timeseries", "stat"}, where
            assert panel["datasource"] == {"type": "prometheus", "uid": source["uid"]}, where
            grid = panel["gridPos"]
            assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24 and grid["h"] > 0, where
            cells = {
                (x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])
            }
            assert not cells & occupied, f"{where} overlaps another panel"
            occupied |= cells
            assert panel["targets"], where
            ref_ids = [t["refId"] for t in panel["targets"]]
            assert len(set(ref_ids)) == len(ref_ids), where
            for target in panel["targets"]:
                assert target["expr"].strip() and target["datasource"] == panel["datasource"], where
    generated = subprocess.run(
        [sys.executable, str(REPO / "tools" / "gen_dashboards.py"), "--check"], capture_output=True, text=True
    )
    assert generated.returncode == 0, generated.stderr


# --------------------------------------------------------------------------------------------------------
# Against the live mesh
# --------------------------------------------------------------------------------------------------------


@dataclass
class Prometheus:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def api(self, path: str, **params: str) -> Any:
        reply = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=10).json()
        assert reply["status"] == "success", reply
        return reply["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query; a parse error fails here with Prometheus' message."""
        reply = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10).json()
        assert reply["status"] == "success", f"{expr}: {reply.get('errorType')}: {reply.get('error')}"
        data = reply["data"]
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        return list(data["result"])

    def value(self, expr: str) -> float:
        found = self.query(expr)
        return float(found[0]["value"][1]) if found else 0.0


def _metrics_port(running: Running, name: str) -> int:
    return int(json.loads((running.data_dir / "run" / f"{name}.json").read_text())["metrics_port"])


def _test_config(running: Running, workdir: Path) -> Path:
    """The project's prometheus.yml with its targets pointed at the mesh, scraping every second, and a copy of its
    alert rules with short `for:` durations."""
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config["global"].update({"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"})
    admin = urllib.parse.urlsplit(running.admin_url).netloc
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {*SERVICE_JOBS, "gateway"}
    for name in SERVICE_JOBS:
        jobs[name]["static_configs"] = [{"targets": [f"127.0.0.1:{_metrics_port(running, name)}"]}]
    # `flowdock up` serves Envoy's /stats/prometheus on its admin port (compose: the --stats-port listener).
    jobs["gateway"]["static_configs"] = [{"targets": [admin]}]
    rules = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule["for"] = SHORT_FOR
    (workdir / "alerts.yml").write_text(yaml.safe_dump(rules))
    assert config["rule_files"] == ["alerts.yml"]
    path = workdir / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def _start_prometheus(config: Path, workdir: Path) -> Prometheus:
    port = free_port()
    log = workdir / "prometheus.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--storage.tsdb.retention.time=1h",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    prom = Prometheus(f"http://127.0.0.1:{port}", proc, log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"prometheus exited with {proc.returncode}:\n{log.read_text()[-3000:]}"
        try:
            if httpx.get(f"{prom.url}/-/ready", timeout=2).status_code == 200:
                return prom
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"prometheus not ready in 30 s:\n{log.read_text()[-3000:]}")


@dataclass
class Live:
    running: Running
    prom: Prometheus


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    _need_prometheus()
    need_clamd()
    root = tmp_path_factory.mktemp("prometheus")
    with running_clamd(root / "clamd") as clamd:
        env = {
            "FLOWDOCK_STORAGE_CLAMD_ADDRESS": clamd.address,
            "FLOWDOCK_STORAGE_CLAMD_STREAM_MAX_BYTES": str(clamd.stream_max_bytes),
        }
        with flowdock_up(root / "data", "sqlite", env=env) as running:
            prom = _start_prometheus(_test_config(running, root), root)
            try:
                # Counters first seen already raised show no rate: let Prometheus see every target once first.
                _wait_targets_up(prom)
                _drive_traffic(running, "ops@example.org")
                yield Live(running, prom)
            finally:
                prom.proc.terminate()
                try:
                    prom.proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    prom.proc.kill()
                    prom.proc.wait()


def _wait_targets_up(prom: Prometheus, timeout: float = 30) -> None:
    def down() -> list[str]:
        targets = prom.api("targets")["activeTargets"]
        jobs = {t["labels"]["job"] for t in targets}
        missing = [f"no target for {job}" for job in (*SERVICE_JOBS, "gateway") if job not in jobs]
        unhealthy = [f"{t['labels']['job']}: {t['health']} {t['lastError']}" for t in targets if t["health"] != "up"]
        return missing + unhealthy

    _eventually("targets not up", down, timeout=timeout)


def _drive_traffic(running: Running, email: str) -> None:
    """What the dashboards show: uploads (completed, checksum failure, infected), a download, errors, and calls by
    REST, grpc-web and native gRPC."""
    base = running.url
    with httpx.Client(base_url=base, timeout=60) as http:
        account = {"email": email, "password": "correct horse battery"}
        assert http.post("/api/v1/auth/register", json=account).status_code == 200
        token = http.post("/api/v1/auth/login", json=account).json()["accessToken"]
        auth = {"authorization": f"Bearer {token}"}

        def upload(name: str, content: bytes, sha256: str) -> dict[str, Any]:
            created = http.post(
                "/api/v1/uploads",
                headers=auth,
                json={"parent_id": "root", "name": name, "size": len(content), "sha256": sha256},
            )
            assert created.status_code == 200, created.text
            upload_id = created.json()["uploadId"]
            put = http.put(f"/api/v1/uploads/{upload_id}", params={"offset": 0}, headers=auth, content=content)
            assert put.status_code == 200, put.text
            finished = http.post(f"/api/v1/uploads/{upload_id}/finish", headers=auth, json={})
            assert finished.status_code == 200, finished.text
            return dict(finished.json())

        good = b"monitoring works\n" * 100
        done = upload("good.txt", good, hashlib.sha256(good).hexdigest())
        upload("bad-checksum.txt", good, hashlib.sha256(b"something else").hexdigest())
        upload("eicar.txt", EICAR, hashlib.sha256(EICAR).hexdigest())
        file_id = done.get("node", {}).get("id") or done.get("nodeId")
        assert file_id, done
        content = http.get(f"/api/v1/files/{file_id}/content", headers=auth)
        assert content.status_code == 200 and content.content == good
        assert http.get("/api/v1/folders/no-such-folder/children", headers=auth).status_code == 404
        for _ in range(5):
            assert http.get("/api/v1/folders/root/children", headers=auth).status_code == 200
    web = GrpcWeb(base, token)
    for _ in range(3):
        web.call(
            "flowdock.storage.v1.StorageService/ListChildren",
            storage_pb2.ListChildrenRequest(folder_id="root"),
            storage_pb2.ListChildrenResponse,
        )
    with native_channel(running.host_port) as channel:
        stub = storage_pb2_grpc.StorageServiceStub(channel)
        for _ in range(3):
            stub.ListChildren(
                storage_pb2.ListChildrenRequest(folder_id="root"), metadata=[("authorization", f"Bearer {token}")]
            )


def _eventually(what: str, check: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if not last:
            return None
        time.sleep(1)
    raise AssertionError(f"{what}: {last}")


def test_every_target_is_up(live: Live) -> None:
    _wait_targets_up(live.prom)
    assert live.prom.value('count(up{job=~"auth|storage|share|gateway"} == 1)') == 4


def test_every_dashboard_and_rule_expression_returns_series(live: Live) -> None:
    exprs = dashboard_queries() + [(f"alert {r['alert']}", signal_side(r["expr"])) for r in alert_rules()]
    assert len(exprs) > 40

    def empty() -> list[str]:
        return [f"{where}: {expr}" for where, expr in exprs if not live.prom.query(expr)]

    # Sampled gauges refresh every 10 s, rates need two scrapes: give them a few rounds.
    _eventually("expressions without series", empty, timeout=60)


def test_gateway_tells_protocols_apart_and_storage_counts_outcomes(live: Live) -> None:
    prom = live.prom

    def missing() -> list[str]:
        wanted = {
            **{
                f"gateway {p}": f'sum(envoy_vhost_vcluster_upstream_rq_total{{envoy_virtual_cluster="{p}"}})'
                for p in ("rest", "grpc_web", "grpc")
            },
            **{
                f"outcome {o}": f'sum(flowdock_upload_outcomes_total{{outcome="{o}"}})'
                for o in ("completed", "failed_checksum", "infected")
            },
            "infected scan": 'sum(flowdock_scan_seconds_count{result="infected"})',
            "clean scan": 'sum(flowdock_scan_seconds_count{result="clean"})',
            "clamd up": 'flowdock_clamd_up{service="storage"}',
            "bytes down": 'flowdock_bytes_streamed_total{direction="download"}',
            "NOT_FOUND counted": 'sum(flowdock_grpc_requests_total{code="NOT_FOUND"})',
            "an account in a quota bucket": 'sum(flowdock_quota_accounts{bucket="lt50"})',
        }
        return [name for name, expr in wanted.items() if prom.value(expr) < 1]

    _eventually("not counted", missing, timeout=40)
    # grpc-web and native calls were 3 each, REST many more: each landed in its own virtual cluster.
    assert prom.value('sum(envoy_vhost_vcluster_upstream_rq_total{envoy_virtual_cluster="grpc_web"})') == 3
    assert prom.value('sum(envoy_vhost_vcluster_upstream_rq_total{envoy_virtual_cluster="grpc"})') == 3
    # No label carries an id: every label value of every FlowDock series is from the bounded sets.
    for series in prom.api("series", **{"match[]": '{__name__=~"flowdock_.*"}'}):
        for key, value in series.items():
            assert not re.search(r"[0-9a-f]{8}-[0-9a-f]{4}-", value), f"{key}={value} looks like an id"


def test_service_down_alert_fires_when_a_service_stops(live: Live) -> None:
    prom = live.prom

    def firing() -> set[str]:
        return {
            a["labels"].get("job", "")
            for a in prom.api("alerts")["alerts"]
            if a["labels"]["alertname"] == "FlowDockServiceDown" and a["state"] == "firing"
        }

    _eventually("targets not up before the stop", lambda: prom.value('sum(up{job=~"auth|storage|share"})') != 3, 30)
    assert firing() == set()
    pid = live.running.pids["share"]
    os.kill(pid, signal.SIGSTOP)
    try:
        _eventually("FlowDockServiceDown not firing for share", lambda: "share" not in firing(), timeout=30)
        assert firing() == {"share"}
    finally:
        os.kill(pid, signal.SIGCONT)
    _eventually("FlowDockServiceDown still firing after share came back", firing, timeout=30)


def test_dashboards_render_to_png_from_prometheus(live: Live, tmp_path: Path) -> None:
    """tools/render_dashboards.py draws every dashboard from the live queries (docs/operations.md's picture is made
    this way: set FLOWDOCK_DASHBOARD_PNG_DIR to keep the PNGs)."""
    keep = os.environ.get("FLOWDOCK_DASHBOARD_PNG_DIR")
    out_dir = Path(keep) if keep else tmp_path
    _drive_traffic(live.running, "render@example.org")  # a second round: rates the picture can show
    time.sleep(3)
    for name in dashboards():
        out = out_dir / f"dashboard-{name.removesuffix('.json')}.png"
        done = subprocess.run(
            [
                sys.executable,
                str(REPO / "tools" / "render_dashboards.py"),
                "--prometheus",
                live.prom.url,
                "--dashboard",
                name.removesuffix(".json"),
                "--minutes",
                "3",
                "--out",
                str(out),
            ],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
        data = out.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and 10_000 < len(data) < 300_000, (name, len(data))
