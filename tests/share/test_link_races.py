"""Link-password throttling holds under concurrency, through the gateway on SQLite and PostgreSQL: 50 wrong
passwords sent at once (from five loopback addresses, so the per-IP limit of 12 is not what stops them) have at most
the per-link limit (5 in the test mesh) evaluated; every other answer is 429 naming the limit, never a 5xx.

Each attempt is counted before its password is checked, so the count cannot be passed by arriving together. An
answer "busy" from the hashing pool (a client's concurrent checks are capped) is retried, as a client would after
its RetryInfo delay: those attempts were never evaluated."""

from __future__ import annotations

import concurrent.futures
import random
import time
from typing import Any

from tests.share.support import User, Visitor
from tests.support.mesh import Running

LIMIT_PER_LINK = 5  # FLOWDOCK_SHARE_LINK_PASSWORD_FAILURES_PER_LINK in tests/share/conftest.py


def _limit_of(body: dict[str, Any]) -> str:
    for d in body.get("details", []):
        if d.get("@type", "").endswith("QuotaFailure"):
            return str(d["violations"][0]["subject"])
    return ""


def test_fifty_parallel_wrong_link_passwords_evaluate_at_most_the_limit(share_mesh: Running) -> None:
    a = User(share_mesh, "a")
    folder = a.folder("Guarded")
    link = a.link(folder, "view", password="the right password")
    base = f"127.0.{random.randint(1, 250)}."
    visitors = [Visitor(share_mesh, local_address=base + str(i)) for i in range(2, 7)]

    def attempt(i: int) -> tuple[int, str]:
        v = visitors[i % len(visitors)]
        deadline = time.monotonic() + 60
        while True:
            r = v.open(link["token"], f"wrong guess {i:04d}")
            limit = _limit_of(r.json()) if r.status_code == 429 else ""
            if "hashing" not in limit or time.monotonic() > deadline:
                return r.status_code, limit
            time.sleep(0.1)  # the pool was busy: not evaluated, try again

    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(attempt, range(50)))
    statuses = [s for s, _ in answers]
    assert not [s for s in statuses if s >= 500], answers
    evaluated = statuses.count(403)
    assert 1 <= evaluated <= LIMIT_PER_LINK, f"{evaluated} wrong passwords were checked (limit {LIMIT_PER_LINK})"
    assert statuses.count(429) == 50 - evaluated, answers
    assert {limit for s, limit in answers if s == 429} == {"share_link_password_failures_per_link"}, answers
    # The owner's activity shows exactly the evaluated failures.
    deadline = time.monotonic() + 15
    while True:
        failed = [e for e in a.activity() if e["kind"] == "link.password_failed"]
        if len(failed) >= evaluated or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(failed) == evaluated, failed
    # And the right password is refused too while the link is throttled.
    assert visitors[0].open(link["token"], "the right password").status_code == 429
