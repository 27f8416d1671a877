"""A third-party fuzzer over every REST route (issue 13 "Bad input, third-party"; issue 16 item 5).

schemathesis reads the OpenAPI document the gateway serves (/api/v1/openapi.json, generated from the protos) and
sends a bounded number of generated requests to every operation of `flowdock up`, twice: with an access token (path
parameters and id-like body fields are mostly real ids of a seeded account, so requests get past the 404s) and
without one (every protected operation must answer 401). Checks: no 5xx, and every response keeps the document's
promises (declared status code, content type, body schema, headers). Hypothesis is derandomised, so a CI run is
reproducible; failures are collected (not shrunk) and reported together with the counts.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core import NotSet
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.accounts import PASSWORD, make_admin
from tests.support.encoding import b64
from tests.support.mesh import Running

DOCUMENT = Path(__file__).resolve().parents[2] / "gen" / "python" / "flowdock" / "openapi.json"
#: Examples per operation: with a token (most get real ids), and without one.
EXAMPLES_WITH_TOKEN = 8
EXAMPLES_WITHOUT_TOKEN = 2
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
#: Operations that end or change the caller's own sessions or credentials run as a throwaway account, so the main
#: account's token survives the run.
SELF_SERVICE = {
    "AuthService_Logout",
    "AuthService_RevokeSession",
    "AuthService_RevokeOtherSessions",
    "AuthService_ChangePassword",
    "AuthService_ChangeEmail",
    "AuthService_StartTotpEnrollment",
    "AuthService_ConfirmTotp",
    "AuthService_DisableTotp",
    "AuthService_UpdateMe",
    "AuthService_CreateAppPassword",
    "AuthService_RevokeAppPassword",
}
#: Of those, the ones that can end the session their token belongs to: a fresh login before each.
ENDS_SESSIONS = {
    "AuthService_Logout",
    "AuthService_RevokeSession",
    "AuthService_RevokeOtherSessions",
    "AuthService_ChangePassword",
}
_METHOD_ORDER = {"GET": 0, "POST": 1, "PUT": 2, "PATCH": 3, "DELETE": 4}


@dataclass
class Account:
    email: str
    user_id: str = ""
    token: str = ""
    fetched: float = 0.0


@dataclass
class World:
    """Real ids of a seeded account, and tokens that are refreshed before they expire (5 minutes)."""

    url: str
    main: Account
    throwaway: Account
    admin_token: Callable[[], str]
    ids: dict[str, list[str]] = field(default_factory=dict)
    body_ids: dict[str, list[str]] = field(default_factory=dict)

    def login(self, account: Account, *, fresh: bool = False) -> str:
        if fresh or time.monotonic() - account.fetched > 120:
            r = httpx.post(f"{self.url}/api/v1/auth/login", json={"email": account.email, "password": PASSWORD})
            assert r.status_code == 200, r.text
            account.token, account.fetched = r.json()["accessToken"], time.monotonic()
        return account.token


def seed(mesh: Running) -> World:
    def register(prefix: str) -> Account:
        email = f"{prefix}{uuid.uuid4().hex[:10]}@example.org"
        r = httpx.post(f"{mesh.url}/api/v1/auth/register", json={"email": email, "password": PASSWORD})
        assert r.status_code == 200, r.text
        return Account(email)

    admin_cache: dict[str, Any] = {}

    def admin_token() -> str:
        if time.monotonic() - admin_cache.get("at", 0.0) > 120:
            admin_cache["token"], admin_cache["at"] = make_admin(mesh).access_token, time.monotonic()
        return str(admin_cache["token"])

    world = World(mesh.url, register("fz"), register("fzt"), admin_token)
    other = register("fzo")
    h = {"authorization": f"Bearer {world.login(world.main)}"}
    with httpx.Client(base_url=mesh.url, headers=h, timeout=30) as c:

        def ok(method: str, path: str, **kw: Any) -> Any:
            r = c.request(method, path, **kw)
            assert r.status_code == 200, (path, r.text)
            return r.json()

        world.main.user_id = ok("GET", "/api/v1/me")["id"]
        folder = ok("POST", "/api/v1/folders", json={"parentId": "root", "name": "fuzz"})["id"]
        sub = ok("POST", "/api/v1/folders", json={"parentId": folder, "name": "sub"})["id"]
        first = {"parentId": folder, "name": "a.txt", "size": 5, "content": b64(b"hello")}
        file_id = ok("POST", "/api/v1/uploads", json=first)["node"]["id"]
        again = {**first, "size": 6, "content": b64(b"hello!"), "onConflict": "ON_CONFLICT_NEW_VERSION"}
        ok("POST", "/api/v1/uploads", json=again)
        versions = [v["id"] for v in ok("GET", f"/api/v1/files/{file_id}/versions")["versions"]]
        upload = ok("POST", "/api/v1/uploads", json={"parentId": folder, "name": "open.bin", "size": 1 << 20})
        gone = ok("POST", "/api/v1/folders", json={"parentId": "root", "name": "gone"})["id"]
        ok("DELETE", f"/api/v1/nodes/{gone}")
        share = ok(
            "POST", "/api/v1/shares", json={"nodeId": folder, "granteeEmail": other.email, "role": "SHARE_ROLE_VIEWER"}
        )
        other_id = share["granteeId"]
        view = ok("POST", "/api/v1/links", json={"nodeId": folder, "permission": "LINK_PERMISSION_DOWNLOAD"})
        drop = ok("POST", "/api/v1/links", json={"nodeId": folder, "permission": "LINK_PERMISSION_UPLOAD"})
        url = ok("POST", f"/api/v1/files/{file_id}/download-url", json={})["url"]
    with httpx.Client(base_url=mesh.url, timeout=30) as c:
        r = c.post(f"/api/v1/public/links/{drop['token']}/uploads", json={"name": "drop.bin", "size": 1 << 20})
        assert r.status_code == 200, r.text
        link_upload = r.json()["uploadId"]
    h = {"authorization": f"Bearer {world.login(world.throwaway)}"}
    app_password = httpx.post(f"{mesh.url}/api/v1/me/app-passwords", headers=h, json={"name": "fuzz"}).json()
    sessions = httpx.get(f"{mesh.url}/api/v1/me/sessions", headers=h).json()["sessions"]
    world.ids = {
        "folder_id": ["root", folder, sub],
        "node_id": [folder, sub, file_id, gone],
        "file_id": [file_id],
        "version_id": versions,
        "upload_id": [upload["uploadId"], link_upload],
        "share_id": [share["id"]],
        "link_id": [view["id"], drop["id"]],
        "link_token": [view["token"], drop["token"]],
        "download_token": [url.rsplit("/", 1)[-1]],
        "session_id": [s["id"] for s in sessions],
        "id": [app_password["appPassword"]["id"]],  # RevokeAppPassword's
        "user_id": [other_id],
        "provider": ["none"],
    }
    world.body_ids = {
        "parentId": ["root", folder, sub],
        "nodeId": [folder, sub, file_id],
        "folderId": [folder, sub],
        "fileId": [file_id],
        "granteeEmail": [other.email],
        "version": versions,
    }
    return world


def seeded_path(world: World, path: str, name: str) -> list[str]:
    if name == "token":
        return world.ids["download_token"] if path.startswith("/api/v1/download/") else world.ids["link_token"]
    if name == "upload_id" and "/public/links/" in path:
        return world.ids["upload_id"][1:]
    return world.ids.get(name, [])


@dataclass
class Tally:
    operations: int = 0
    examples: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    by_operation: dict[str, set[int]] = field(default_factory=dict)
    failures: dict[tuple[str, str], str] = field(default_factory=dict)


def run_operation(world: World, operation: Any, *, with_token: bool, tally: Tally) -> None:
    label = operation.label
    path = operation.path
    op_id = operation.definition.raw.get("operationId", "")
    public = operation.definition.raw.get("security") == []
    cases = operation.as_strategy()
    if with_token:
        # A quarter of the requests break the document on purpose (wrong types, missing required fields, values out
        # of range): they must be refused with a 4xx, never a 5xx.
        try:
            negative = operation.as_strategy(generation_mode=GenerationMode.NEGATIVE)
            cases = st.one_of(cases, cases, cases, negative)
        except Exception:  # noqa: S110 - nothing in this operation can be made invalid
            pass
    strategy = st.tuples(cases, st.sampled_from([True, True, True, False]), st.randoms())

    @given(drawn=strategy)
    @settings(
        max_examples=EXAMPLES_WITH_TOKEN if with_token else EXAMPLES_WITHOUT_TOKEN,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    def one(drawn: tuple[Any, bool, Any]) -> None:
        case, use_real, rnd = drawn
        if use_real:
            for name in list(case.path_parameters or {}):
                choices = seeded_path(world, path, name)
                if choices:
                    case.path_parameters[name] = rnd.choice(choices)
            if isinstance(case.body, dict):
                for key in list(case.body):
                    if key in world.body_ids:
                        case.body[key] = rnd.choice(world.body_ids[key])
        headers: dict[str, str] = {}
        if with_token:
            if path.startswith("/api/v1/admin/"):
                token = world.admin_token()
            elif op_id in SELF_SERVICE:
                token = world.login(world.throwaway, fresh=op_id in ENDS_SESSIONS)
            else:
                token = world.login(world.main)
            headers["authorization"] = f"Bearer {token}"
        try:
            response = case.call(base_url=world.url, headers=headers, timeout=30)
        except requests.RequestException as exc:
            tally.failures.setdefault((label, f"network error: {type(exc).__name__}"), str(exc)[:300])
            return
        tally.examples += 1
        status = response.status_code
        tally.statuses[status] = tally.statuses.get(status, 0) + 1
        tally.by_operation.setdefault(label, set()).add(status)
        if not with_token and not public and status != 401:
            tally.failures.setdefault((label, "protected operation answered without a token"), f"{status}")
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except (Exception, BaseExceptionGroup) as exc:  # schemathesis' FailureGroup is a BaseExceptionGroup
            failures = getattr(exc, "exceptions", [exc])
            for failure in failures:
                title = getattr(failure, "title", type(failure).__name__)
                body = "" if isinstance(case.body, NotSet) else f" body={str(case.body)[:200]}"
                request = f"{case.method} {response.request.url}{body} -> {response.text[:200]!r}"
                request += f" (x-request-id {response.headers.get('x-request-id', '-')})"
                tally.failures.setdefault(
                    (label, title), f"{status}: {getattr(failure, 'message', str(failure))[:300]}\n    {request}"
                )

    one()
    tally.operations += 1


def test_schemathesis_finds_no_5xx_and_no_broken_promise(mesh: Running) -> None:
    served = httpx.get(f"{mesh.url}/api/v1/openapi.json")
    assert served.status_code == 200
    assert served.headers["content-type"] == "application/json"
    assert served.content == DOCUMENT.read_bytes(), "the gateway serves the committed document"
    schema = schemathesis.openapi.from_dict(json.loads(served.content))
    world = seed(mesh)
    operations = sorted(
        (result.ok() for result in schema.get_all_operations()),
        key=lambda op: (_METHOD_ORDER.get(op.method.upper(), 9), op.path),
    )
    started = time.monotonic()
    tallies = {True: Tally(), False: Tally()}
    for with_token in (False, True):
        for operation in operations:
            run_operation(world, operation, with_token=with_token, tally=tallies[with_token])
    elapsed = time.monotonic() - started
    lines = [
        f"{'with' if mode else 'without'} token: {t.operations} operations, {t.examples} requests, "
        f"statuses {dict(sorted(t.statuses.items()))}, {len(t.failures)} distinct failures"
        for mode, t in tallies.items()
    ]
    print(f"\nschemathesis ({mesh.backend}, {elapsed:.0f} s):", *lines, sep="\n  ")
    failures = {**tallies[False].failures, **tallies[True].failures}
    report = "\n".join(f"{label}: {title}\n    {detail}" for (label, title), detail in sorted(failures.items()))
    assert not failures, report
    # The run reached the services: with a token, every operation got past authentication at least once.
    only_401 = sorted(label for label, seen in tallies[True].by_operation.items() if seen == {401})
    assert not only_401, only_401
    assert len(operations) == sum(len(methods) for methods in json.loads(served.content)["paths"].values())
    assert not any(s >= 500 for t in tallies.values() for s in t.statuses)
