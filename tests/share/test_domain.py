"""Pure rules of share_svc: grants over ancestor paths, link scope, link-session signatures."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from share_svc.adapters import HmacSessionSigner
from share_svc.domain import Action, Link, LinkPermission, Role, Share, decide, link_allows

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def share(node: str, role: Role) -> Share:
    return Share(f"s-{node}", node, "owner", "grantee", role, NOW)


def link(node: str, permission: LinkPermission) -> Link:
    return Link("l1", "h", node, "owner", permission, "", None, 0, 0, 0, NOW)


def test_a_grant_covers_its_subtree_and_reports_its_top() -> None:
    path = ["file", "sub", "top", "root"]  # nearest first
    d = decide([share("top", Role.VIEWER)], path, Action.LIST)
    assert d.allowed and d.visible and d.grant_node_id == "top"
    d = decide([share("top", Role.VIEWER)], path, Action.DOWNLOAD)
    assert not d.allowed and d.visible
    # Two grants on the path: the higher one that allows the action is the top.
    both = [share("sub", Role.EDITOR), share("top", Role.EDITOR)]
    assert decide(both, path, Action.WRITE).grant_node_id == "top"
    mixed = [share("sub", Role.EDITOR), share("top", Role.VIEWER)]
    assert decide(mixed, path, Action.WRITE).grant_node_id == "sub"
    assert not decide([], path, Action.LIST).visible


def test_link_scope_and_permissions() -> None:
    path = ["f", "root-of-link", "above"]
    assert link_allows(link("root-of-link", LinkPermission.VIEW), path, "owner", Action.LIST)
    assert not link_allows(link("root-of-link", LinkPermission.VIEW), path, "owner", Action.DOWNLOAD)
    assert not link_allows(link("elsewhere", LinkPermission.DOWNLOAD), path, "owner", Action.LIST)
    assert not link_allows(link("root-of-link", LinkPermission.DOWNLOAD), path, "someone else", Action.LIST)
    drop = link("root-of-link", LinkPermission.UPLOAD)
    assert link_allows(drop, path, "owner", Action.UPLOAD)
    assert not link_allows(drop, path, "owner", Action.LIST)
    assert not link_allows(drop, path, "owner", Action.DOWNLOAD)


def test_link_sessions_cannot_be_forged() -> None:
    key = secrets.token_bytes(32)
    signer = HmacSessionSigner(key)
    token = signer.sign("link-id", 3, 2_000_000_000)
    assert signer.verify(token) == ("link-id", 3, 2_000_000_000)
    for i in range(len(token)):
        c = token[i]
        forged = token[:i] + ("A" if c != "A" else "B") + token[i + 1 :]
        assert signer.verify(forged) is None, forged
    assert HmacSessionSigner(secrets.token_bytes(32)).verify(token) is None
    body, _, mac = token.rpartition(".")
    assert signer.verify(body.replace("link-id", "other-id") + "." + mac) is None
    assert signer.verify(body.replace(".3.", ".4.") + "." + mac) is None
    assert signer.verify("") is None and signer.verify("x" * 300) is None
