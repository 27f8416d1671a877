"""share_svc's use cases (share_svc/usecases.py) over in-memory fakes of their ports
(tests/support/fakes_share.py): shares, roles, links and the access decisions, in milliseconds, with the clock in
the test's hand. The same features through the real adapters, databases and gateway: tests/share/."""

from __future__ import annotations

from datetime import timedelta

import pytest

from flowdock_kernel.errors import (
    AlreadyExists,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
)
from share_svc.domain import Action, LinkPermission, Role
from share_svc.ports import Account
from share_svc.usecases import LINK_GONE, LinkChanges, LinkPolicy, Sharing
from tests.support.fakes_share import ShareFakes


@pytest.fixture
def fakes() -> ShareFakes:
    return ShareFakes()


@pytest.fixture
def sharing(fakes: ShareFakes) -> Sharing:
    return fakes.sharing()


@pytest.fixture
def alice(fakes: ShareFakes) -> Account:
    return fakes.account("alice@example.org")


@pytest.fixture
def bob(fakes: ShareFakes) -> Account:
    return fakes.account("bob@example.org")


# -- shares --------------------------------------------------------------------------------------------------


async def test_create_share_records_notifies_and_lists_both_ways(
    fakes: ShareFakes, sharing: Sharing, alice: Account, bob: Account
) -> None:
    folder = fakes.node(alice.id)
    share = await sharing.create_share(alice.id, folder.id, " Bob@Example.org", Role.VIEWER)
    assert (share.owner_id, share.grantee_id, share.node_id, share.role) == (alice.id, bob.id, folder.id, Role.VIEWER)
    assert share.grantee_email == "bob@example.org" and share.created_at == fakes.clock.now()
    assert fakes.store.state.shares == {share.id: share}
    event = fakes.store.state.events[-1]
    assert event.kind == "share.created" and event.details["grantee_id"] == bob.id and event.details["role"] == "viewer"
    assert [(to, subject) for to, subject, _ in fakes.accounts.notified] == [
        (bob.id, "Something was shared with you on FlowDock")
    ]
    assert "folder" in fakes.accounts.notified[0][2] and "as viewer" in fakes.accounts.notified[0][2]
    assert (await sharing.outgoing(alice.id, 0, ""))[0] == [share]
    assert (await sharing.incoming(bob.id, 0, ""))[0] == [share]
    assert (await sharing.incoming(alice.id, 0, ""))[0] == []


async def test_a_failed_notification_does_not_undo_the_share(
    fakes: ShareFakes, sharing: Sharing, alice: Account, bob: Account
) -> None:
    fakes.accounts.notify_fails = True
    share = await sharing.create_share(alice.id, fakes.node(alice.id).id, bob.email, Role.EDITOR)
    assert share.id in fakes.store.state.shares


@pytest.mark.parametrize(
    ("email", "role", "field"),
    [
        ("bob@example.org", None, "role"),
        ("  ", Role.VIEWER, "grantee_email"),
        ("stranger@example.org", Role.VIEWER, "grantee_email"),  # no such account
        ("alice@example.org", Role.VIEWER, "grantee_email"),  # oneself
    ],
)
async def test_create_share_refuses_bad_input_naming_the_field(
    fakes: ShareFakes, sharing: Sharing, alice: Account, bob: Account, email: str, role: Role | None, field: str
) -> None:
    with pytest.raises(InvalidArgument) as refused:
        await sharing.create_share(alice.id, fakes.node(alice.id).id, email, role)
    assert refused.value.field == field
    assert fakes.store.state.shares == {} and fakes.accounts.notified == []


async def test_only_the_owner_shares_and_never_the_root_folder(
    fakes: ShareFakes, sharing: Sharing, alice: Account, bob: Account
) -> None:
    folder = fakes.node(alice.id)
    with pytest.raises(PermissionDenied, match="re-sharing"):
        await sharing.create_share(bob.id, folder.id, alice.email, Role.VIEWER)
    with pytest.raises(InvalidArgument) as root:
        await sharing.create_share(alice.id, folder.parent_id, bob.email, Role.VIEWER)
    assert root.value.field == "node_id"
    with pytest.raises(NotFound):
        await sharing.create_share(alice.id, "no-such-node", bob.email, Role.VIEWER)
    with pytest.raises(InvalidArgument) as long_id:
        await sharing.create_share(alice.id, "x" * 65, bob.email, Role.VIEWER)
    assert long_id.value.field == "node_id"


async def test_sharing_a_node_twice_with_one_person_is_already_exists(
    fakes: ShareFakes, sharing: Sharing, alice: Account, bob: Account
) -> None:
    folder = fakes.node(alice.id)
    await sharing.create_share(alice.id, folder.id, bob.email, Role.VIEWER)
    with pytest.raises(AlreadyExists, match="change its role"):
        await sharing.create_share(alice.id, folder.id, bob.email, Role.EDITOR)
    assert len(fakes.store.state.shares) == 1 and fakes.event_kinds() == ["share.created"]


async def test_update_and_revoke_are_the_owners_and_take_effect_at_the_next_check(
    fakes: ShareFakes, sharing: Sharing, alice: Account, bob: Account
) -> None:
    folder = fakes.node(alice.id)
    file = fakes.node(alice.id, parent=folder.id, folder=False)
    path = fakes.path(file.id)
    share = await sharing.create_share(alice.id, folder.id, bob.email, Role.VIEWER)
    assert not (await sharing.check_access(bob.id, path, alice.id, Action.DOWNLOAD)).allowed

    with pytest.raises(NotFound):  # the grantee cannot change it; someone else's share looks missing
        await sharing.update_share(bob.id, share.id, Role.EDITOR)
    fakes.clock.advance(minutes=1)
    updated = await sharing.update_share(alice.id, share.id, Role.DOWNLOADER)
    assert updated.role == Role.DOWNLOADER and updated.updated_at == fakes.clock.now()
    assert fakes.store.state.shares[share.id].role == Role.DOWNLOADER
    assert fakes.store.state.events[-1].details["from"] == "viewer"
    assert (await sharing.check_access(bob.id, path, alice.id, Action.DOWNLOAD)).allowed

    with pytest.raises(NotFound):
        await sharing.delete_share(bob.id, share.id)
    await sharing.delete_share(alice.id, share.id)
    decision = await sharing.check_access(bob.id, path, alice.id, Action.LIST)
    assert not decision.allowed and not decision.visible
    with pytest.raises(NotFound):
        await sharing.delete_share(alice.id, share.id)


async def test_share_lists_page_by_id(fakes: ShareFakes, sharing: Sharing, alice: Account) -> None:
    grantees = [fakes.account(f"g{i}@example.org") for i in range(5)]
    made = [await sharing.create_share(alice.id, fakes.node(alice.id).id, g.email, Role.VIEWER) for g in grantees]
    first, token = await sharing.outgoing(alice.id, 2, "")
    second, token2 = await sharing.outgoing(alice.id, 2, token)
    third, token3 = await sharing.outgoing(alice.id, 2, token2)
    ids = [s.id for s in first + second + third]
    assert ids == sorted(s.id for s in made) and token3 == ""
    with pytest.raises(InvalidArgument) as bad:
        await sharing.outgoing(alice.id, 1001, "")
    assert bad.value.field == "page_size"


# -- access decisions ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        (Role.VIEWER, {Action.LIST}),
        (Role.DOWNLOADER, {Action.LIST, Action.DOWNLOAD}),
        (Role.EDITOR, {Action.LIST, Action.DOWNLOAD, Action.WRITE}),
    ],
)
async def test_a_role_on_a_folder_covers_its_subtree_for_its_actions(
    fakes: ShareFakes, sharing: Sharing, alice: Account, bob: Account, role: Role, allowed: set[Action]
) -> None:
    folder = fakes.node(alice.id)
    deep = fakes.node(alice.id, parent=fakes.node(alice.id, parent=folder.id).id, folder=False)
    await sharing.create_share(alice.id, folder.id, bob.email, role)
    for action in Action:
        decision = await sharing.check_access(bob.id, fakes.path(deep.id), alice.id, action)
        assert decision.allowed == (action in allowed), action
        assert decision.visible
        assert decision.grant_node_id == (folder.id if action in allowed else "")


async def test_access_outside_the_shared_folder_or_from_strangers_is_invisible(
    fakes: ShareFakes, sharing: Sharing, alice: Account, bob: Account
) -> None:
    shared = fakes.node(alice.id)
    sibling = fakes.node(alice.id, parent=shared.parent_id)
    carol = fakes.account("carol@example.org")
    await sharing.create_share(alice.id, shared.id, bob.email, Role.EDITOR)
    for caller, node in ((bob, sibling), (carol, shared)):
        decision = await sharing.check_access(caller.id, fakes.path(node.id), alice.id, Action.LIST)
        assert not decision.allowed and not decision.visible
    owner = await sharing.check_access(alice.id, fakes.path(sibling.id), alice.id, Action.WRITE)
    assert owner.allowed and owner.grant_node_id == shared.parent_id


async def test_the_grant_reported_is_the_highest_that_allows(
    fakes: ShareFakes, sharing: Sharing, alice: Account, bob: Account
) -> None:
    top = fakes.node(alice.id)
    inner = fakes.node(alice.id, parent=top.id)
    await sharing.create_share(alice.id, top.id, bob.email, Role.VIEWER)
    await sharing.create_share(alice.id, inner.id, bob.email, Role.EDITOR)
    path = fakes.path(fakes.node(alice.id, parent=inner.id, folder=False).id)
    assert (await sharing.check_access(bob.id, path, alice.id, Action.LIST)).grant_node_id == top.id
    assert (await sharing.check_access(bob.id, path, alice.id, Action.WRITE)).grant_node_id == inner.id


async def test_access_checks_refuse_empty_and_overlong_paths(sharing: Sharing, alice: Account, bob: Account) -> None:
    for path in ([], ["n"] * 513):
        with pytest.raises(InvalidArgument) as bad:
            await sharing.check_access(bob.id, path, alice.id, Action.LIST)
        assert bad.value.field == "node_path"


async def test_dropping_a_tree_needs_write_access_and_takes_shares_and_links(
    fakes: ShareFakes, sharing: Sharing, alice: Account, bob: Account
) -> None:
    folder = fakes.node(alice.id)
    child = fakes.node(alice.id, parent=folder.id, folder=False)
    other = fakes.node(alice.id)
    await sharing.create_share(alice.id, folder.id, bob.email, Role.VIEWER)
    await sharing.create_share(alice.id, other.id, bob.email, Role.VIEWER)
    await sharing.create_link(alice.id, child.id, LinkPermission.DOWNLOAD)
    with pytest.raises(PermissionDenied):  # a viewer cannot delete
        await sharing.drop_shares(bob.id, alice.id, fakes.path(folder.id), [child.id])
    assert await sharing.drop_shares(alice.id, alice.id, fakes.path(folder.id), [child.id]) == 2
    assert [s.node_id for s in fakes.store.state.shares.values()] == [other.id]
    assert fakes.store.state.links == {}
    assert fakes.store.state.events[-1].details == {"node_id": folder.id, "count": "2", "reason": "node deleted"}


async def test_deleting_a_user_is_for_admins_and_drops_shares_both_ways_and_links(
    fakes: ShareFakes, sharing: Sharing, alice: Account, bob: Account
) -> None:
    await sharing.create_share(alice.id, fakes.node(alice.id).id, bob.email, Role.VIEWER)
    await sharing.create_share(bob.id, fakes.node(bob.id).id, alice.email, Role.VIEWER)
    await sharing.create_link(bob.id, fakes.node(bob.id).id, LinkPermission.VIEW)
    with pytest.raises(PermissionDenied):
        await sharing.delete_user(alice.id, False, bob.id)
    with pytest.raises(InvalidArgument) as bad:
        await sharing.delete_user(alice.id, True, "")
    assert bad.value.field == "user_id"
    assert await sharing.delete_user(alice.id, True, bob.id) == 3
    assert fakes.store.state.shares == {} and fakes.store.state.links == {}


# -- links ---------------------------------------------------------------------------------------------------


async def test_a_link_stores_only_its_tokens_hash_and_opens_its_subtree(
    fakes: ShareFakes, sharing: Sharing, alice: Account
) -> None:
    folder = fakes.node(alice.id)
    file = fakes.node(alice.id, parent=folder.id, folder=False)
    outside = fakes.node(alice.id)
    link, token = await sharing.create_link(alice.id, folder.id, LinkPermission.VIEW)
    assert len(token) >= 43 and token not in str(fakes.store.state.links)
    assert link.password_hash == "" and link.epoch == 0 and link.downloads == 0
    grant = await sharing.check_link_access(token, "", fakes.path(file.id), alice.id, Action.LIST)
    assert grant.allowed and grant.link.id == link.id
    assert not (await sharing.check_link_access(token, "", fakes.path(file.id), alice.id, Action.DOWNLOAD)).allowed
    assert not (await sharing.check_link_access(token, "", fakes.path(outside.id), alice.id, Action.LIST)).allowed
    assert not (await sharing.check_link_access(token, "", fakes.path(file.id), "someone-else", Action.LIST)).allowed


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"permission": None}, "permission"),
        ({"password": "short"}, "password"),
        ({"max_downloads": -1}, "max_downloads"),
        ({"max_upload_files": 3}, "max_upload_files"),  # limits of a file drop on a download link
        ({"expires_at": "past"}, "expire_time"),
    ],
)
async def test_create_link_refuses_bad_options_naming_the_field(
    fakes: ShareFakes, sharing: Sharing, alice: Account, options: dict[str, object], field: str
) -> None:
    options = {"permission": LinkPermission.DOWNLOAD, **options}
    if options.get("expires_at") == "past":
        options["expires_at"] = fakes.clock.now()
    with pytest.raises(InvalidArgument) as refused:
        await sharing.create_link(alice.id, fakes.node(alice.id).id, **options)  # type: ignore[arg-type]
    assert refused.value.field == field
    assert fakes.store.state.links == {}


async def test_a_file_drop_needs_a_folder(fakes: ShareFakes, sharing: Sharing, alice: Account) -> None:
    file = fakes.node(alice.id, folder=False)
    with pytest.raises(InvalidArgument, match="folder"):
        await sharing.create_link(alice.id, file.id, LinkPermission.UPLOAD)
    link, _ = await sharing.create_link(alice.id, file.id, LinkPermission.VIEW)
    with pytest.raises(InvalidArgument, match="folder"):
        await sharing.update_link(alice.id, link.id, LinkChanges(permission=LinkPermission.UPLOAD))
    assert fakes.store.state.links[link.id].permission == LinkPermission.VIEW


async def test_an_expired_link_is_gone_like_a_revoked_or_unknown_one(
    fakes: ShareFakes, sharing: Sharing, alice: Account
) -> None:
    folder = fakes.node(alice.id)
    expiring, token = await sharing.create_link(
        alice.id, folder.id, LinkPermission.VIEW, expires_at=fakes.clock.now() + timedelta(hours=1)
    )
    revoked, revoked_token = await sharing.create_link(alice.id, folder.id, LinkPermission.VIEW)
    await sharing.delete_link(alice.id, revoked.id)
    fakes.clock.advance(minutes=59)
    await sharing.open_link(token, "", "198.51.100.1")
    fakes.clock.advance(minutes=1)
    for dead in (token, revoked_token, "x" * 43, "short"):
        with pytest.raises(NotFound) as gone:
            await sharing.open_link(dead, "", "198.51.100.1")
        assert gone.value.message == LINK_GONE
    await sharing.update_link(alice.id, expiring.id, LinkChanges(clear_expiry=True))
    assert (await sharing.open_link(token, "", ""))[0].expires_at is None


async def test_the_download_limit_counts_downloads_only(fakes: ShareFakes, sharing: Sharing, alice: Account) -> None:
    file = fakes.node(alice.id, folder=False)
    path = fakes.path(file.id)
    link, token = await sharing.create_link(alice.id, file.id, LinkPermission.DOWNLOAD, max_downloads=2)
    for _ in range(3):  # listing is free
        assert (await sharing.check_link_access(token, "", path, alice.id, Action.LIST)).allowed
    for _ in range(2):
        assert (await sharing.check_link_access(token, "", path, alice.id, Action.DOWNLOAD)).allowed
    with pytest.raises(ResourceExhausted) as spent:
        await sharing.check_link_access(token, "", path, alice.id, Action.DOWNLOAD)
    assert spent.value.limit == "link_max_downloads"
    assert fakes.store.state.links[link.id].downloads == 2
    # The owner raising the limit keeps the count (an update never resets it).
    await sharing.update_link(alice.id, link.id, LinkChanges(max_downloads=3))
    assert (await sharing.check_link_access(token, "", path, alice.id, Action.DOWNLOAD)).allowed
    assert fakes.store.state.links[link.id].downloads == 3


async def test_a_password_link_needs_a_session_from_its_password(
    fakes: ShareFakes, sharing: Sharing, alice: Account
) -> None:
    file = fakes.node(alice.id, folder=False)
    path = fakes.path(file.id)
    link, token = await sharing.create_link(alice.id, file.id, LinkPermission.DOWNLOAD, password="open sesame")
    assert link.password_hash and "open sesame" not in link.password_hash
    with pytest.raises(Unauthenticated):
        await sharing.check_link_access(token, "", path, alice.id, Action.LIST)
    with pytest.raises(PermissionDenied, match="wrong password"):
        await sharing.open_link(token, "open sesame!", "198.51.100.1")
    assert "link.password_failed" in fakes.event_kinds()
    opened, session, expires = await sharing.open_link(token, "open sesame", "198.51.100.1")
    assert opened.id == link.id and expires == fakes.clock.now() + timedelta(seconds=LinkPolicy().session_seconds)
    assert (await sharing.check_link_access(token, session, path, alice.id, Action.DOWNLOAD)).allowed
    assert [e.kind for e in fakes.events.recorded] == ["link.opened"]
    with pytest.raises(Unauthenticated):  # a forged session
        await sharing.check_link_access(token, session[:-3] + "bad", path, alice.id, Action.LIST)

    fakes.clock.advance(seconds=LinkPolicy().session_seconds)
    with pytest.raises(Unauthenticated):  # the session expired
        await sharing.check_link_access(token, session, path, alice.id, Action.LIST)


async def test_changing_a_links_password_ends_its_open_sessions(
    fakes: ShareFakes, sharing: Sharing, alice: Account
) -> None:
    file = fakes.node(alice.id, folder=False)
    path = fakes.path(file.id)
    link, token = await sharing.create_link(alice.id, file.id, LinkPermission.VIEW, password="open sesame")
    _, session, _ = await sharing.open_link(token, "open sesame", "")
    updated = await sharing.update_link(alice.id, link.id, LinkChanges(password="new secret 123"))
    assert updated.epoch == 1
    with pytest.raises(Unauthenticated):
        await sharing.check_link_access(token, session, path, alice.id, Action.LIST)
    _, fresh, _ = await sharing.open_link(token, "new secret 123", "")
    assert (await sharing.check_link_access(token, fresh, path, alice.id, Action.LIST)).allowed
    await sharing.update_link(alice.id, link.id, LinkChanges(password=""))  # no password any more
    assert (await sharing.check_link_access(token, "", path, alice.id, Action.LIST)).allowed


async def test_a_session_ends_with_its_link(fakes: ShareFakes, sharing: Sharing, alice: Account) -> None:
    file = fakes.node(alice.id, folder=False)
    _, token = await sharing.create_link(
        alice.id,
        file.id,
        LinkPermission.VIEW,
        password="open sesame",
        expires_at=fakes.clock.now() + timedelta(days=60),
    )
    _, _, expires = await sharing.open_link(token, "open sesame", "")
    assert expires == fakes.clock.now() + timedelta(hours=1)
    _, token = await sharing.create_link(
        alice.id,
        file.id,
        LinkPermission.VIEW,
        password="open sesame",
        expires_at=fakes.clock.now() + timedelta(seconds=60),
    )
    assert (await sharing.open_link(token, "open sesame", ""))[2] == fakes.clock.now() + timedelta(seconds=60)


async def test_wrong_link_passwords_are_throttled_per_link_and_per_ip(fakes: ShareFakes, alice: Account) -> None:
    policy = LinkPolicy(failure_window=timedelta(minutes=5), failures_per_link=3, failures_per_ip=5)
    sharing = fakes.sharing(policy=policy)
    first = fakes.node(alice.id, folder=False)
    link, token = await sharing.create_link(alice.id, first.id, LinkPermission.VIEW, password="open sesame")
    for _ in range(3):
        with pytest.raises(PermissionDenied):
            await sharing.open_link(token, "guess guess", "198.51.100.1")
    with pytest.raises(ResourceExhausted) as per_link:  # even the right password, from anywhere
        await sharing.open_link(token, "open sesame", "203.0.113.9")
    assert per_link.value.limit == "share_link_password_failures_per_link"
    assert fakes.store.failures_of(f"link:{link.id}") == 3

    _, other = await sharing.create_link(alice.id, first.id, LinkPermission.VIEW, password="other secret")
    for _ in range(2):
        with pytest.raises(PermissionDenied):
            await sharing.open_link(other, "guess guess", "198.51.100.1")
    with pytest.raises(ResourceExhausted) as per_ip:
        await sharing.open_link(other, "other secret", "198.51.100.1")
    assert per_ip.value.limit == "share_link_password_failures_per_ip"
    await sharing.open_link(other, "other secret", "203.0.113.9")  # another address gets in

    fakes.clock.advance(minutes=5, seconds=1)
    await sharing.open_link(token, "open sesame", "198.51.100.1")


async def test_right_passwords_and_refused_hashing_are_not_counted(fakes: ShareFakes, alice: Account) -> None:
    sharing = fakes.sharing(policy=LinkPolicy(failures_per_link=2, failures_per_ip=100))
    link, token = await sharing.create_link(
        alice.id, fakes.node(alice.id).id, LinkPermission.VIEW, password="open sesame"
    )
    for _ in range(5):
        await sharing.open_link(token, "open sesame", "198.51.100.1")
    fakes.hasher.full = True
    for _ in range(3):
        with pytest.raises(ResourceExhausted) as busy:
            await sharing.open_link(token, "guess guess", "198.51.100.1")
        assert busy.value.limit == "share.hashing"
    assert fakes.store.failures_of(f"link:{link.id}") == 0
    fakes.hasher.full = False
    with pytest.raises(PermissionDenied):
        await sharing.open_link(token, "guess guess", "198.51.100.1")
    assert fakes.store.failures_of(f"link:{link.id}") == 1


async def test_links_are_their_owners(fakes: ShareFakes, sharing: Sharing, alice: Account, bob: Account) -> None:
    link, _ = await sharing.create_link(alice.id, fakes.node(alice.id).id, LinkPermission.VIEW)
    for attempt in (
        sharing.update_link(bob.id, link.id, LinkChanges(max_downloads=1)),
        sharing.delete_link(bob.id, link.id),
    ):
        with pytest.raises(NotFound):
            await attempt
    assert fakes.store.state.links[link.id] == link
    assert (await sharing.list_links(alice.id, 0, ""))[0] == [link]
    assert (await sharing.list_links(bob.id, 0, ""))[0] == []
    with pytest.raises(PermissionDenied):
        await sharing.create_link(bob.id, link.node_id, LinkPermission.VIEW)


async def test_update_link_refuses_a_past_expiry_and_records_what_changed(
    fakes: ShareFakes, sharing: Sharing, alice: Account
) -> None:
    link, _ = await sharing.create_link(alice.id, fakes.node(alice.id).id, LinkPermission.VIEW)
    with pytest.raises(InvalidArgument) as past:
        await sharing.update_link(alice.id, link.id, LinkChanges(expires_at=fakes.clock.now() - timedelta(1)))
    assert past.value.field == "expire_time"
    later = fakes.clock.now() + timedelta(days=2)
    updated = await sharing.update_link(
        alice.id, link.id, LinkChanges(expires_at=later, permission=LinkPermission.DOWNLOAD)
    )
    assert (updated.expires_at, updated.permission, updated.epoch) == (later, LinkPermission.DOWNLOAD, 0)
    assert fakes.store.state.events[-1].details == {
        "link_id": link.id,
        "permission": "download",
        "password": "kept",
        "expires": later.isoformat(),
        "max_downloads": "0",
    }
