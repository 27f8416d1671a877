"""storage_svc's use cases (storage_svc/usecases/) over in-memory fakes of their ports
(tests/support/fakes_storage.py): folders, trash, versions, quota, uploads, downloads, public links and
housekeeping, in milliseconds, with the clock in the test's hand. The same features through the real adapters,
blob store, clamd and gateway: tests/storage/."""

from __future__ import annotations

import asyncio
import unicodedata
from datetime import timedelta

import pytest

from flowdock_kernel.errors import (
    Aborted,
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
    ResourceExhausted,
    TooLarge,
    Unavailable,
)
from storage_svc.domain import ByteRange, Kind, Node, OnConflict, RangeNotSatisfiable, UploadState
from storage_svc.usecases import Downloads, Housekeeping, PublicLinks, Tree, Uploads
from tests.support.fakes_storage import INFECTED, SIGNATURE, FakePage, StorageFakes, sha256

ALICE, BOB = "alice", "bob"


@pytest.fixture
def fakes() -> StorageFakes:
    return StorageFakes()


@pytest.fixture
def tree(fakes: StorageFakes) -> Tree:
    return fakes.tree()


@pytest.fixture
def uploads(fakes: StorageFakes) -> Uploads:
    return fakes.uploads()


@pytest.fixture
def downloads(fakes: StorageFakes) -> Downloads:
    return fakes.downloads()


@pytest.fixture
def links(fakes: StorageFakes) -> PublicLinks:
    return fakes.links()


@pytest.fixture
def housekeeping(fakes: StorageFakes, uploads: Uploads) -> Housekeeping:
    return fakes.housekeeping(uploads)


async def put(
    uploads: Uploads,
    parent_id: str,
    name: str,
    data: bytes,
    *,
    caller: str = ALICE,
    on_conflict: OnConflict = OnConflict.FAIL,
) -> Node:
    """A file through the resumable path (create, one chunk per max_chunk_bytes, finish)."""
    upload = await uploads.create_upload(caller, parent_id, name, len(data), "", "text/plain", on_conflict=on_conflict)
    step = uploads.limits.max_chunk_bytes
    for offset in range(0, len(data), step):
        await uploads.write_chunk(caller, upload.id, offset, data[offset : offset + step])
    finished, node = await uploads.finish_upload(caller, upload.id)
    assert finished.state == UploadState.COMPLETED, finished.failure
    assert node is not None
    return node


async def listed(tree: Tree, folder_id: str, caller: str = ALICE) -> list[str]:
    page, _, _ = await tree.list_children(caller, folder_id, 10, "")
    assert isinstance(page, FakePage)
    return page.names


# -- folders -------------------------------------------------------------------------------------------------


async def test_create_folder_makes_the_root_once_and_the_folder_under_it(fakes: StorageFakes, tree: Tree) -> None:
    docs = await tree.create_folder(ALICE, "root", "Docs")
    photos = await tree.create_folder(ALICE, "", "Photos")
    root = fakes.root(ALICE)
    assert docs.parent_id == photos.parent_id == root.id
    assert (docs.owner_id, docs.kind, docs.created_at) == (ALICE, Kind.FOLDER, fakes.clock.now())
    assert fakes.live_names(root.id) == ["Docs", "Photos"]
    assert sum(1 for n in fakes.state.nodes.values() if n.parent_id is None) == 1
    inner = await tree.create_folder(ALICE, docs.id, "Inner")
    assert fakes.node(inner.id).parent_id == docs.id


@pytest.mark.parametrize("name", ["", "a/b", "a\\b", "..", "trailing.", " lead", "nul\x00", "evil\u202egpj.exe"])
async def test_invalid_folder_names_are_refused_naming_the_field(fakes: StorageFakes, tree: Tree, name: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        await tree.create_folder(ALICE, "root", name)
    assert refused.value.field == "name"
    assert fakes.state.nodes == {}


async def test_names_clash_case_insensitively_and_in_any_unicode_form(fakes: StorageFakes, tree: Tree) -> None:
    await tree.create_folder(ALICE, "root", "Café")
    for clash in ("CAFÉ", "café", unicodedata.normalize("NFD", "café")):
        with pytest.raises(AlreadyExists, match="already exists"):
            await tree.create_folder(ALICE, "root", clash)
    assert fakes.live_names(fakes.root(ALICE).id) == ["Café"]
    # Another folder, or another user, may use the name.
    other = await tree.create_folder(ALICE, "root", "Other")
    await tree.create_folder(ALICE, other.id, "cafe\u0301")
    await tree.create_folder(BOB, "root", "Café")


async def test_rename_records_the_change_and_follows_the_conflict_policy(fakes: StorageFakes, tree: Tree) -> None:
    a = await tree.create_folder(ALICE, "root", "A")
    await tree.create_folder(ALICE, "root", "Taken")
    fakes.clock.advance(minutes=1)
    renamed = await tree.update_node(ALICE, a.id, "Reports", "", OnConflict.FAIL)
    assert fakes.node(a.id).name == "Reports" and renamed.modified_at == fakes.clock.now()
    event = fakes.state.events[-1]
    assert event.kind == "storage.rename" and event.details == {"node_id": a.id, "from": "A", "to": "Reports"}

    with pytest.raises(AlreadyExists):
        await tree.update_node(ALICE, a.id, "TAKEN", "", OnConflict.FAIL)
    assert fakes.node(a.id).name == "Reports"
    renamed = await tree.update_node(ALICE, a.id, "taken", "", OnConflict.RENAME)
    assert renamed.name == "taken (1)"
    # Its own name in another case is not a clash.
    assert (await tree.update_node(ALICE, a.id, "TAKEN (1)", "", OnConflict.FAIL)).name == "TAKEN (1)"
    with pytest.raises(InvalidArgument) as bad:
        await tree.update_node(ALICE, a.id, "x/y", "", OnConflict.FAIL)
    assert bad.value.field == "name"
    with pytest.raises(FailedPrecondition, match="root folder"):
        await tree.update_node(ALICE, fakes.root(ALICE).id, "Root", "", OnConflict.FAIL)


async def test_a_folder_moves_but_never_into_its_own_subtree(fakes: StorageFakes, tree: Tree) -> None:
    a = await tree.create_folder(ALICE, "root", "A")
    b = await tree.create_folder(ALICE, a.id, "B")
    c = await tree.create_folder(ALICE, b.id, "C")
    for target in (a.id, b.id, c.id):
        with pytest.raises(FailedPrecondition, match="into itself"):
            await tree.update_node(ALICE, a.id, "", target, OnConflict.FAIL)
    assert fakes.node(a.id).parent_id == fakes.root(ALICE).id
    moved = await tree.update_node(ALICE, c.id, "", a.id, OnConflict.FAIL)
    assert fakes.node(c.id).parent_id == a.id == moved.parent_id
    assert fakes.state.events[-1].kind == "storage.move"


async def test_copy_duplicates_a_tree_sharing_the_bytes_and_charging_the_quota(
    fakes: StorageFakes, tree: Tree, uploads: Uploads
) -> None:
    src = await tree.create_folder(ALICE, "root", "Src")
    sub = await tree.create_folder(ALICE, src.id, "Sub")
    file = await put(uploads, sub.id, "f.txt", b"0123456789")
    dst = await tree.create_folder(ALICE, "root", "Dst")

    copy = await tree.copy_node(ALICE, src.id, dst.id, "", OnConflict.FAIL)
    assert copy.id != src.id and copy.parent_id == dst.id and copy.name == "Src"
    copied_sub = next(n for n in fakes.state.nodes.values() if n.parent_id == copy.id)
    copied_file = next(n for n in fakes.state.nodes.values() if n.parent_id == copied_sub.id)
    assert copied_file.id != file.id and copied_file.blob_id != file.blob_id
    assert fakes.content(copied_file.id) == b"0123456789" == fakes.content(file.id)
    assert fakes.usage(ALICE) == (20, 0)

    beside = await tree.copy_node(ALICE, file.id, "", "", OnConflict.FAIL)
    assert beside.name == "f (1).txt" and beside.parent_id == sub.id
    with pytest.raises(FailedPrecondition, match="into itself"):
        await tree.copy_node(ALICE, src.id, sub.id, "", OnConflict.FAIL)
    with pytest.raises(AlreadyExists):
        await tree.copy_node(ALICE, src.id, dst.id, "", OnConflict.FAIL)


async def test_listing_pages_folders_first_with_a_cursor(fakes: StorageFakes, tree: Tree, uploads: Uploads) -> None:
    for name in ("b.txt", "A.txt", "c.txt"):
        await put(uploads, "root", name, b"x")
    await tree.create_folder(ALICE, "root", "zeta")
    await tree.create_folder(ALICE, "root", "Alpha")
    first, token, _ = await tree.list_children(ALICE, "root", 0, "")  # 0: the default page size (3)
    assert isinstance(first, FakePage) and first.names == ["Alpha", "zeta", "A.txt"] and token
    second, end, _ = await tree.list_children(ALICE, "root", 0, token)
    assert isinstance(second, FakePage) and second.names == ["b.txt", "c.txt"] and end == ""
    with pytest.raises(InvalidArgument) as big:
        await tree.list_children(ALICE, "root", 11, "")
    assert big.value.field == "page_size"


# -- trash ---------------------------------------------------------------------------------------------------


async def test_trash_and_restore_renames_when_the_name_was_taken_meanwhile(
    fakes: StorageFakes, tree: Tree, uploads: Uploads
) -> None:
    old = await put(uploads, "root", "a.txt", b"old")
    fakes.clock.advance(seconds=5)
    trashed = await tree.delete_node(ALICE, old.id)
    assert trashed.trashed_at == fakes.clock.now() and await listed(tree, "root") == []
    assert fakes.policy.dropped == [[old.id]]  # share_svc told first
    entries, _ = await tree.list_trash(ALICE, 10, "")
    assert [(e.node.id, e.size) for e in entries] == [(old.id, 3)]

    await put(uploads, "root", "a.txt", b"new")
    restored = await tree.restore_trash(ALICE, old.id)
    assert restored.name == "a (1).txt" and restored.trashed_at is None
    assert await listed(tree, "root") == ["a (1).txt", "a.txt"]
    assert fakes.content(old.id) == b"old" and (await tree.list_trash(ALICE, 10, ""))[0] == []
    with pytest.raises(NotFound):
        await tree.restore_trash(ALICE, old.id)


async def test_deleting_is_refused_as_a_whole_when_share_svc_cannot_drop_the_shares(
    fakes: StorageFakes, tree: Tree
) -> None:
    folder = await tree.create_folder(ALICE, "root", "F")
    fakes.policy.down = True
    with pytest.raises(Unavailable):
        await tree.delete_node(ALICE, folder.id)
    assert fakes.node(folder.id).trashed_at is None and "storage.delete" not in fakes.event_kinds()


async def test_a_folder_deleted_before_its_parent_stays_its_own_trash_entry(
    fakes: StorageFakes, tree: Tree, uploads: Uploads
) -> None:
    p = await tree.create_folder(ALICE, "root", "P")
    c = await tree.create_folder(ALICE, p.id, "C")
    await put(uploads, c.id, "in-c.txt", b"cc")
    await tree.delete_node(ALICE, c.id)
    fakes.clock.advance(seconds=1)
    await tree.delete_node(ALICE, p.id)
    entries, _ = await tree.list_trash(ALICE, 10, "")
    assert [e.node.name for e in entries] == ["P", "C"]  # newest first

    await tree.restore_trash(ALICE, p.id)  # C stays in the trash
    assert await listed(tree, "root") == ["P"] and await listed(tree, p.id) == []
    await tree.restore_trash(ALICE, c.id)  # and goes back inside P
    assert fakes.node(c.id).parent_id == p.id and await listed(tree, c.id) == ["in-c.txt"]


async def test_purging_the_parent_sends_the_inner_entry_home_to_the_root(
    fakes: StorageFakes, tree: Tree, uploads: Uploads
) -> None:
    p = await tree.create_folder(ALICE, "root", "P")
    c = await tree.create_folder(ALICE, p.id, "C")
    kept = await put(uploads, c.id, "kept.txt", b"keep")
    gone = await put(uploads, p.id, "gone.txt", b"gone!")
    assert fakes.usage(ALICE) == (9, 0)
    await tree.delete_node(ALICE, c.id)
    await tree.delete_node(ALICE, p.id)

    freed = await tree.purge_trash(ALICE, p.id)
    assert freed == 5 and fakes.usage(ALICE) == (4, 0)
    assert p.id not in fakes.state.nodes and gone.id not in fakes.state.nodes
    assert gone.blob_id not in fakes.blobs.blobs and kept.blob_id in fakes.blobs.blobs
    assert fakes.state.events[-1].kind == "storage.purge"
    assert fakes.state.events[-1].details["freed_bytes"] == "5"
    restored = await tree.restore_trash(ALICE, c.id)
    assert restored.parent_id == fakes.root(ALICE).id and await listed(tree, c.id) == ["kept.txt"]


async def test_restoring_an_entry_whose_folder_is_still_trashed_puts_it_in_the_root(
    fakes: StorageFakes, tree: Tree
) -> None:
    p = await tree.create_folder(ALICE, "root", "P")
    c = await tree.create_folder(ALICE, p.id, "C")
    await tree.delete_node(ALICE, c.id)
    await tree.delete_node(ALICE, p.id)
    assert (await tree.restore_trash(ALICE, c.id)).parent_id == fakes.root(ALICE).id
    assert fakes.node(p.id).trashed_at is not None


async def test_empty_trash_purges_every_entry_and_frees_their_bytes(
    fakes: StorageFakes, tree: Tree, uploads: Uploads
) -> None:
    files = [await put(uploads, "root", f"{i}.txt", b"x" * (i + 1)) for i in range(3)]
    keep = await put(uploads, "root", "keep.txt", b"kk")
    for file in files:
        await tree.delete_node(ALICE, file.id)
    with pytest.raises(NotFound):  # only the owner purges
        await tree.purge_trash(BOB, files[0].id)
    assert await tree.empty_trash(ALICE) == 6
    assert fakes.usage(ALICE) == (2, 0) and (await tree.list_trash(ALICE, 10, ""))[0] == []
    assert set(fakes.blobs.blobs) == {keep.blob_id}


# -- versions ------------------------------------------------------------------------------------------------


async def test_an_upload_with_new_version_replaces_the_content_and_keeps_the_old(
    fakes: StorageFakes, tree: Tree, uploads: Uploads
) -> None:
    first = await put(uploads, "root", "doc.txt", b"one")
    fakes.clock.advance(minutes=1)
    second = await put(uploads, "root", "DOC.txt", b"second", on_conflict=OnConflict.NEW_VERSION)
    assert second.id == first.id and second.name == "doc.txt" and fakes.content(first.id) == b"second"
    node, versions = await tree.list_versions(ALICE, first.id)
    assert [(v.number, v.size) for v in versions] == [(2, 6), (1, 3)] and node.version_id == versions[0].id
    assert fakes.usage(ALICE) == (9, 0)
    usage, in_trash, not_current = await tree.quota(ALICE)
    assert (usage.used, in_trash, not_current) == (9, 0, 3)


async def test_restoring_a_version_makes_a_new_current_one_with_the_old_bytes(
    fakes: StorageFakes, tree: Tree, uploads: Uploads
) -> None:
    file = await put(uploads, "root", "doc.txt", b"one")
    await put(uploads, "root", "doc.txt", b"two", on_conflict=OnConflict.NEW_VERSION)
    _, versions = await tree.list_versions(ALICE, file.id)
    v1 = versions[-1]
    restored = await tree.restore_version(ALICE, file.id, v1.id)
    assert fakes.content(file.id) == b"one" and restored.blob_id != v1.blob_id
    _, versions = await tree.list_versions(ALICE, file.id)
    assert [v.number for v in versions] == [3, 2, 1] and fakes.state.events[-1].kind == "storage.version_restore"
    assert fakes.usage(ALICE) == (9, 0)
    with pytest.raises(NotFound):
        await tree.restore_version(ALICE, file.id, "no-such-version")


async def test_versions_beyond_the_retention_count_are_pruned_with_their_bytes(
    fakes: StorageFakes, tree: Tree, uploads: Uploads
) -> None:
    assert fakes.limits.versions_kept == 3
    file = await put(uploads, "root", "doc.txt", b"v1")
    blobs = [file.blob_id]
    for i in range(2, 6):
        newer = await put(uploads, "root", "doc.txt", f"v{i}".encode(), on_conflict=OnConflict.NEW_VERSION)
        blobs.append(newer.blob_id)
    _, versions = await tree.list_versions(ALICE, file.id)
    assert [v.number for v in versions] == [5, 4, 3]
    assert sorted(fakes.blobs.blobs) == sorted(blobs[2:])
    assert fakes.usage(ALICE) == (6, 0)


# -- quota ---------------------------------------------------------------------------------------------------


async def test_an_upload_reserves_its_size_and_a_refusal_names_the_limit(fakes: StorageFakes, uploads: Uploads) -> None:
    assert fakes.limits.default_quota_bytes == 1000
    big = await uploads.create_upload(ALICE, "root", "big.bin", 900, "", "")
    assert fakes.usage(ALICE) == (0, 900)
    with pytest.raises(QuotaExceeded) as refused:
        await uploads.create_upload(ALICE, "root", "more.bin", 101, "", "")
    assert refused.value.limit == "storage_quota_bytes"
    assert "1000 bytes" in refused.value.message and "900 reserved" in refused.value.message
    assert len(fakes.state.uploads) == 1 and fakes.usage(ALICE) == (0, 900)
    await uploads.create_upload(ALICE, "root", "fits.bin", 100, "", "")  # exactly up to the limit

    await uploads.abort_upload(ALICE, big.id)
    assert fakes.usage(ALICE) == (0, 100) and big.id not in fakes.blobs.staging
    with pytest.raises(NotFound):
        await uploads.get_upload(ALICE, big.id)


async def test_an_admin_limit_overrides_the_default(fakes: StorageFakes, tree: Tree, uploads: Uploads) -> None:
    usage = await tree.set_quota(ALICE, 10)
    assert usage.limit == 10
    with pytest.raises(QuotaExceeded):
        await uploads.create_upload(ALICE, "root", "f", 11, "", "")
    assert (await tree.set_quota(ALICE, 0)).limit == 1000  # 0: back to the default
    with pytest.raises(InvalidArgument) as negative:
        await tree.set_quota(ALICE, -1)
    assert negative.value.field == "limit_bytes"


async def test_housekeeping_expires_abandoned_uploads_and_releases_their_reservation(
    fakes: StorageFakes, uploads: Uploads, housekeeping: Housekeeping
) -> None:
    upload = await uploads.create_upload(ALICE, "root", "f.bin", 100, "", "")
    await uploads.write_chunk(ALICE, upload.id, 0, b"abcd")
    done = await put(uploads, "root", "done.txt", b"ok")
    fakes.clock.advance(hours=23)
    assert (await housekeeping.run_once())["expired_uploads"] == 0
    assert fakes.usage(ALICE) == (2, 100)
    fakes.clock.advance(hours=2)
    assert (await housekeeping.run_once())["expired_uploads"] == 2  # the open one and the finished one's row
    assert fakes.state.uploads == {} and fakes.usage(ALICE) == (2, 0)
    assert upload.id not in fakes.blobs.staging and fakes.content(done.id) == b"ok"


async def test_writing_pushes_the_expiry_back(
    fakes: StorageFakes, uploads: Uploads, housekeeping: Housekeeping
) -> None:
    upload = await uploads.create_upload(ALICE, "root", "f.bin", 8, "", "")
    fakes.clock.advance(hours=20)
    await uploads.write_chunk(ALICE, upload.id, 0, b"abcd")
    fakes.clock.advance(hours=20)
    await housekeeping.run_once()
    assert upload.id in fakes.state.uploads


# -- uploads -------------------------------------------------------------------------------------------------


async def test_chunks_at_the_committed_offset_then_finish_make_the_file(fakes: StorageFakes, uploads: Uploads) -> None:
    data = b"hello, world"
    upload = await uploads.create_upload(ALICE, "root", "hello.txt", len(data), sha256(data), "text/plain")
    assert upload.state == UploadState.OPEN and upload.id in fakes.blobs.staging
    for offset in (0, 5, 10):
        assert await uploads.write_chunk(ALICE, upload.id, offset, data[offset : offset + 5]) == min(
            offset + 5, len(data)
        )
    assert fakes.state.uploads[upload.id].committed_size == len(data)
    assert fakes.blobs.durable[upload.id] == len(data)
    finished, node = await uploads.finish_upload(ALICE, upload.id)
    assert finished.state == UploadState.COMPLETED and node is not None and finished.node_id == node.id
    assert (node.name, node.size, node.sha256, node.content_type) == ("hello.txt", 12, sha256(data), "text/plain")
    assert fakes.content(node.id) == data and upload.id not in fakes.blobs.staging
    assert fakes.usage(ALICE) == (12, 0) and fakes.event_kinds()[-1] == "storage.upload"
    assert fakes.scanner.scanned == [data]
    assert (await uploads.finish_upload(ALICE, upload.id))[0].state == UploadState.COMPLETED  # finishing twice


async def test_a_chunk_at_the_wrong_offset_is_refused_with_the_offset_to_resume_at(
    fakes: StorageFakes, uploads: Uploads
) -> None:
    upload = await uploads.create_upload(ALICE, "root", "f.bin", 12, "", "")
    await uploads.write_chunk(ALICE, upload.id, 0, b"abcd")
    for wrong in (0, 2, 8):
        with pytest.raises(FailedPrecondition) as refused:
            await uploads.write_chunk(ALICE, upload.id, wrong, b"efgh")
        assert refused.value.reason == "UPLOAD_OFFSET_MISMATCH"
        assert refused.value.metadata == {"committed_size": "4"} and "resume at offset 4" in refused.value.message
    with pytest.raises(FailedPrecondition) as early:
        await uploads.finish_upload(ALICE, upload.id)
    assert early.value.reason == "UPLOAD_INCOMPLETE" and early.value.metadata == {"committed_size": "4"}
    with pytest.raises(InvalidArgument) as past:
        await uploads.write_chunk(ALICE, upload.id, 4, b"x" * 9)
    assert past.value.field == "data"
    assert bytes(fakes.blobs.staging[upload.id]) == b"abcd"


async def test_a_chunk_over_the_maximum_is_refused_naming_the_limit(fakes: StorageFakes, uploads: Uploads) -> None:
    upload = await uploads.create_upload(ALICE, "root", "f.bin", 200, "", "")
    with pytest.raises(TooLarge) as refused:
        await uploads.write_chunk(ALICE, upload.id, 0, b"x" * 65)
    assert refused.value.limit == "storage_max_chunk_bytes" and "64 bytes" in refused.value.message
    assert fakes.state.uploads[upload.id].committed_size == 0
    with pytest.raises(TooLarge) as file_limit:
        await uploads.create_upload(ALICE, "root", "huge.bin", 1025, "", "")
    assert file_limit.value.limit == "storage_max_file_bytes"


async def test_a_checksum_mismatch_fails_the_upload_and_releases_everything(
    fakes: StorageFakes, uploads: Uploads
) -> None:
    upload = await uploads.create_upload(ALICE, "root", "f.txt", 4, sha256(b"abcd"), "")
    await uploads.write_chunk(ALICE, upload.id, 0, b"abcX")
    finished, node = await uploads.finish_upload(ALICE, upload.id)
    assert finished.state == UploadState.FAILED and node is None
    assert f"not the declared {sha256(b'abcd')}" in finished.failure
    assert fakes.state.uploads[upload.id].failure == finished.failure
    assert fakes.usage(ALICE) == (0, 0) and fakes.blobs.blobs == {} and upload.id not in fakes.blobs.staging
    assert fakes.live_names(fakes.root(ALICE).id) == []
    with pytest.raises(InvalidArgument) as bad:
        await uploads.create_upload(ALICE, "root", "g.txt", 4, "abc", "")
    assert bad.value.field == "sha256"


async def test_infected_content_fails_with_the_signature_and_is_destroyed(
    fakes: StorageFakes, uploads: Uploads
) -> None:
    data = b"<" + INFECTED + b">"
    upload = await uploads.create_upload(ALICE, "root", "eicar.com", len(data), "", "")
    await uploads.write_chunk(ALICE, upload.id, 0, data)
    finished, node = await uploads.finish_upload(ALICE, upload.id)
    assert finished.state == UploadState.FAILED and node is None and SIGNATURE in finished.failure
    infected = fakes.events.recorded[-1]
    assert infected.kind == "storage.infected" and infected.details["signature"] == SIGNATURE
    assert fakes.blobs.blobs == {} and upload.id not in fakes.blobs.staging and fakes.usage(ALICE) == (0, 0)


async def test_a_scanner_that_is_down_leaves_the_upload_open_to_finish_later(
    fakes: StorageFakes, uploads: Uploads
) -> None:
    upload = await uploads.create_upload(ALICE, "root", "f.txt", 4, "", "")
    await uploads.write_chunk(ALICE, upload.id, 0, b"abcd")
    fakes.scanner.down = True
    with pytest.raises(Unavailable):
        await uploads.finish_upload(ALICE, upload.id)
    assert fakes.state.uploads[upload.id].state == UploadState.OPEN and fakes.usage(ALICE) == (0, 4)
    fakes.scanner.down = False
    finished, node = await uploads.finish_upload(ALICE, upload.id)
    assert finished.state == UploadState.COMPLETED and node is not None and fakes.content(node.id) == b"abcd"


async def test_content_over_the_scanners_limit_is_refused_by_default(fakes: StorageFakes, uploads: Uploads) -> None:
    fakes.scanner.limit = 3
    upload = await uploads.create_upload(ALICE, "root", "f.txt", 4, "", "")
    await uploads.write_chunk(ALICE, upload.id, 0, b"abcd")
    finished, _ = await uploads.finish_upload(ALICE, upload.id)
    assert finished.state == UploadState.FAILED and "storage_clamd_stream_max_bytes" in finished.failure


async def test_an_upload_resumes_at_its_committed_size_after_the_writer_went_away(
    fakes: StorageFakes, uploads: Uploads
) -> None:
    data = b"0123456789"
    upload = await uploads.create_upload(ALICE, "root", "f.txt", len(data), sha256(data), "")
    first = uploads.writer(ALICE, upload.id)
    assert await first.open(0) == 0
    await first.write(data[:4])
    assert await first.flush() == 4
    await first.write(data[4:6])  # received, never flushed: not acknowledged
    # The client vanished without closing: its lease holds the upload until it lapses.
    second = uploads.writer(ALICE, upload.id)
    with pytest.raises(Aborted) as held:
        await second.open(4)
    assert held.value.retry_after_seconds == 5
    fakes.blobs.crash()
    fakes.clock.advance(seconds=61)

    got, _ = await uploads.get_upload(ALICE, upload.id)
    assert got.committed_size == 4 and bytes(fakes.blobs.staging[upload.id]) == data[:4]
    with pytest.raises(FailedPrecondition):
        await uploads.writer(ALICE, upload.id).open(6)
    async with uploads.writer(ALICE, upload.id) as resumed:
        await resumed.open(4)
        await resumed.write(data[4:])
        assert await resumed.flush() == len(data)
    finished, node = await uploads.finish_upload(ALICE, upload.id)
    assert finished.state == UploadState.COMPLETED and node is not None and fakes.content(node.id) == data


async def test_a_writer_idle_past_its_lease_never_writes_over_the_writer_that_took_over(
    fakes: StorageFakes, uploads: Uploads
) -> None:
    data = b"0123456789"
    upload = await uploads.create_upload(ALICE, "root", "f.txt", len(data), sha256(data), "")
    first = uploads.writer(ALICE, upload.id)
    await first.open(0)
    await first.write(data[:4])
    assert await first.flush() == 4
    await first.write(b"XY")  # a few bytes held in memory, then the client stalls past the lease
    fakes.clock.advance(seconds=61)
    async with uploads.writer(ALICE, upload.id) as second:
        assert await second.open(4) == 4
        await second.write(data[4:])
        assert await second.flush() == len(data)
    # The stalled writer wakes up: it finds its hold gone before its held bytes touch the staging file.
    with pytest.raises(Aborted):
        await first.flush()
    assert bytes(fakes.blobs.staging[upload.id]) == data
    finished, node = await uploads.finish_upload(ALICE, upload.id)
    assert finished.state == UploadState.COMPLETED and node is not None and fakes.content(node.id) == data


async def test_a_writer_whose_process_died_is_taken_over_at_once_and_a_live_one_never(
    fakes: StorageFakes, uploads: Uploads
) -> None:
    data = b"0123456789"
    upload = await uploads.create_upload(ALICE, "root", "f.txt", len(data), sha256(data), "")
    first = uploads.writer(ALICE, upload.id)
    await first.open(0)
    await first.write(data[:4])
    assert await first.flush() == 4
    await first.write(data[4:6])  # received, never flushed: not acknowledged
    # Its process lives (a stalled client, another replica): the lease holds, however often a second writer asks.
    with pytest.raises(Aborted):
        await uploads.writer(ALICE, upload.id).open(4)
    # Its process was killed (kill -9 of the replica): nobody writes any more, so no waiting for the lease to lapse.
    fakes.blobs.crash()
    fakes.holders.kill(first.token)
    async with uploads.writer(ALICE, upload.id) as resumed:
        assert await resumed.open(4) == 4
        # The dead writer's hold is gone for good: were it alive after all, its next flush would find out.
        with pytest.raises(Aborted):
            await first.flush(renew=True)
        # And the new holder is live: a third writer is refused.
        with pytest.raises(Aborted):
            await uploads.writer(ALICE, upload.id).open(4)
        await resumed.write(data[4:])
        assert await resumed.flush() == len(data)
    finished, node = await uploads.finish_upload(ALICE, upload.id)
    assert finished.state == UploadState.COMPLETED and node is not None and fakes.content(node.id) == data


async def test_a_finish_whose_finisher_died_is_taken_over_at_once_by_the_client_and_by_housekeeping(
    fakes: StorageFakes, uploads: Uploads, housekeeping: Housekeeping
) -> None:
    for who in ("client", "housekeeping"):
        upload = await uploads.create_upload(ALICE, "root", f"{who}.txt", 4, "", "")
        await uploads.write_chunk(ALICE, upload.id, 0, b"abcd")
        async with fakes.store.uow() as uow:
            now = fakes.clock.now()
            until = now + timedelta(seconds=60)
            assert await uow.uploads.acquire(upload.id, "finisher", until, now, UploadState.FINISHING)
            await uow.commit()
        got, _ = await uploads.finish_upload(ALICE, upload.id)
        assert got.state == UploadState.FINISHING  # a live finisher: the client polls
        assert (await housekeeping.run_once())["resumed_finishes"] == 0
        fakes.holders.kill("finisher")
        if who == "client":
            got, node = await uploads.finish_upload(ALICE, upload.id)
        else:
            assert (await housekeeping.run_once())["resumed_finishes"] == 1
        await asyncio.gather(*uploads._tasks)
        got, node = await uploads.get_upload(ALICE, upload.id)
        assert got.state == UploadState.COMPLETED and node is not None and fakes.content(node.id) == b"abcd"
        fakes.holders.dead.clear()


async def test_polling_a_finish_whose_finisher_is_lost_takes_it_over(
    fakes: StorageFakes, uploads: Uploads, housekeeping: Housekeeping
) -> None:
    """A client that only polls GetUpload (as the SDKs do after FinishUpload) moves a lost finish on itself: no wait
    for housekeeping (every 5 minutes). Lost: its process ended, or its hold lapsed (a database outage)."""
    for how in ("dead", "lapsed"):
        upload = await uploads.create_upload(ALICE, "root", f"{how}.bin", 4, "", "")
        await uploads.write_chunk(ALICE, upload.id, 0, b"wxyz")
        async with fakes.store.uow() as uow:
            now = fakes.clock.now()
            assert await uow.uploads.acquire(
                upload.id, "finisher", now + timedelta(seconds=60), now, UploadState.FINISHING
            )
            await uow.commit()
        got, _ = await uploads.get_upload(ALICE, upload.id)
        assert got.state == UploadState.FINISHING and not uploads._tasks  # a live finisher: left alone
        if how == "dead":
            fakes.holders.kill("finisher")
        else:
            fakes.clock.advance(timedelta(seconds=61))
        await uploads.get_upload(ALICE, upload.id)
        await asyncio.gather(*uploads._tasks)
        got, node = await uploads.get_upload(ALICE, upload.id)
        assert got.state == UploadState.COMPLETED and node is not None and fakes.content(node.id) == b"wxyz"
        fakes.holders.dead.clear()


async def test_uploads_are_private_to_their_creator(fakes: StorageFakes, uploads: Uploads) -> None:
    upload = await uploads.create_upload(ALICE, "root", "f.txt", 4, "", "")
    for call in (
        uploads.write_chunk(BOB, upload.id, 0, b"abcd"),
        uploads.finish_upload(BOB, upload.id),
        uploads.abort_upload(BOB, upload.id),
        uploads.get_upload(BOB, upload.id),
    ):
        with pytest.raises(NotFound, match=f"upload {upload.id} not found"):
            await call
    assert fakes.state.uploads[upload.id].committed_size == 0


async def test_a_small_file_in_one_call_is_committed_whole(fakes: StorageFakes, uploads: Uploads) -> None:
    data = b"tiny file"
    upload, node = await uploads.upload_inline(ALICE, "root", "t.txt", data, len(data), sha256(data), "text/plain")
    assert upload.state == UploadState.COMPLETED and node is not None and upload.node_id == node.id
    assert fakes.content(node.id) == data and fakes.blobs.staging == {} and fakes.blobs.syncs == 0
    assert fakes.usage(ALICE) == (len(data), 0) and fakes.event_kinds() == ["storage.upload"]
    assert (await uploads.get_upload(ALICE, upload.id))[0].state == UploadState.COMPLETED
    with pytest.raises(AlreadyExists):
        await uploads.upload_inline(ALICE, "root", "T.TXT", b"x", 1, "", "")
    assert fakes.usage(ALICE) == (len(data), 0) and len(fakes.blobs.blobs) == 1
    with pytest.raises(TooLarge) as big:
        await uploads.upload_inline(ALICE, "root", "big.txt", b"x" * 33, 33, "", "")
    assert big.value.limit == "storage_inline_upload_bytes"
    with pytest.raises(InvalidArgument) as size:
        await uploads.upload_inline(ALICE, "root", "s.txt", b"abc", 4, "", "")
    assert size.value.field == "size"


async def test_refused_small_files_end_as_failed_uploads_like_chunked_ones(
    fakes: StorageFakes, uploads: Uploads
) -> None:
    infected, node = await uploads.upload_inline(ALICE, "root", "v.com", INFECTED, len(INFECTED), "", "")
    assert infected.state == UploadState.FAILED and node is None and SIGNATURE in infected.failure
    wrong, node = await uploads.upload_inline(ALICE, "root", "w.txt", b"abc", 3, sha256(b"abd"), "")
    assert wrong.state == UploadState.FAILED and "SHA-256" in wrong.failure
    assert fakes.blobs.blobs == {} and fakes.usage(ALICE) == (0, 0)


async def test_a_relative_path_creates_the_folders_first(fakes: StorageFakes, tree: Tree, uploads: Uploads) -> None:
    _upload, node = await uploads.upload_inline(ALICE, "root", "", b"x", 1, "", "", relative_path="a/b/c.txt")
    assert node is not None and node.name == "c.txt"
    path = [n.name for n in await tree.node_path(ALICE, node.id)]
    assert path == ["", "a", "b", "c.txt"]
    with pytest.raises(InvalidArgument) as climb:
        await uploads.upload_inline(ALICE, "root", "", b"x", 1, "", "", relative_path="a/../c.txt")
    assert climb.value.field == "relative_path"


# -- downloads -----------------------------------------------------------------------------------------------


async def test_a_download_streams_the_requested_range(
    fakes: StorageFakes, uploads: Uploads, downloads: Downloads
) -> None:
    file = await put(uploads, "root", "f.txt", b"0123456789")
    node, version, offset, length = await downloads.open_download(ALICE, file.id, 2, 5)
    assert version is not None and (node.id, offset, length) == (file.id, 2, 5)
    chunks = [c async for c in downloads.read(version, offset, length)]
    assert b"".join(chunks) == b"23456" and [len(c) for c in chunks] == [4, 1]  # chunk_bytes = 4
    assert (await downloads.open_download(ALICE, file.id, 7, 0))[2:] == (7, 3)  # 0: to the end
    assert (await downloads.open_download(ALICE, file.id, 8, 100))[2:] == (8, 2)  # clipped
    with pytest.raises(InvalidArgument) as past:
        await downloads.open_download(ALICE, file.id, 11, 0)
    assert past.value.field == "offset"
    download = fakes.events.recorded[0]
    assert download.kind == "storage.download" and download.details["offset"] == "2"
    assert download.details["length"] == "5"


async def test_a_range_header_resumes_a_download_where_it_broke(uploads: Uploads, downloads: Downloads) -> None:
    """A REST client whose transfer broke asks for the rest (Range: bytes=N-), with If-Range naming what it had."""
    file = await put(uploads, "root", "f.txt", b"0123456789")
    _, version, offset, length = await downloads.open_download(ALICE, file.id, 0, 0, byte_range=ByteRange(6, None))
    assert version is not None and (offset, length) == (6, 4)
    same = ByteRange(6, None, if_range=version.etag)
    assert (await downloads.open_download(ALICE, file.id, 0, 0, byte_range=same))[2:] == (6, 4)
    changed = ByteRange(6, None, if_range='"other content"')
    assert (await downloads.open_download(ALICE, file.id, 0, 0, byte_range=changed))[2:] == (0, 10)  # all of it
    with pytest.raises(RangeNotSatisfiable):
        await downloads.open_download(ALICE, file.id, 0, 0, byte_range=ByteRange(10, None))


async def test_another_users_file_looks_missing_unless_shared(
    fakes: StorageFakes, tree: Tree, uploads: Uploads, downloads: Downloads
) -> None:
    folder = await tree.create_folder(ALICE, "root", "Shared")
    file = await put(uploads, folder.id, "f.txt", b"secret")
    with pytest.raises(NotFound) as hidden:
        await downloads.open_download(BOB, file.id, 0, 0)
    with pytest.raises(NotFound) as missing:
        await downloads.open_download(BOB, "no-such-node", 0, 0)
    assert str(hidden.value).replace(file.id, "X") == str(missing.value).replace("no-such-node", "X")
    with pytest.raises(NotFound):
        await tree.list_children(BOB, folder.id, 0, "")

    fakes.policy.share(folder.id, "list")
    assert await listed(tree, folder.id, BOB) == ["f.txt"]
    with pytest.raises(PermissionDenied, match="downloading"):
        await downloads.open_download(BOB, file.id, 0, 0)
    fakes.policy.share(folder.id, "list", "download")
    assert (await downloads.open_download(BOB, file.id, 0, 0))[3] == 6
    assert fakes.events.recorded[-1].actor == BOB and fakes.events.recorded[-1].subject == ALICE


async def test_a_signed_download_url_expires_with_the_clock(
    fakes: StorageFakes, uploads: Uploads, downloads: Downloads
) -> None:
    file = await put(uploads, "root", "f.txt", b"abc")
    token, expires = await downloads.create_download_url(ALICE, file.id, "")
    assert expires == fakes.clock.now() + timedelta(seconds=60)
    fakes.clock.advance(seconds=60)
    node, version, offset, size = await downloads.open_download_url(token)
    assert (node.id, version.id, offset, size) == (file.id, file.version_id, 0, 3)
    fakes.clock.advance(seconds=1)
    with pytest.raises(NotFound, match="expired"):
        await downloads.open_download_url(token)
    with pytest.raises(NotFound, match="expired"):  # an expired URL is refused before its range is looked at
        await downloads.open_download_url(token, ByteRange(3, None))
    with pytest.raises(NotFound, match="expired"):
        await downloads.open_download_url("forged" + token)
    with pytest.raises(NotFound):
        await downloads.create_download_url(BOB, file.id, "")


async def test_a_signed_download_url_resumes_by_range(
    fakes: StorageFakes, uploads: Uploads, downloads: Downloads
) -> None:
    """A browser's download manager (or `curl -C -`) resumes a signed URL where it broke, as on the content route."""
    file = await put(uploads, "root", "f.txt", b"0123456789")
    token, _ = await downloads.create_download_url(ALICE, file.id, "")
    _, version, offset, length = await downloads.open_download_url(token, ByteRange(6, None))
    assert (offset, length) == (6, 4)
    assert {"offset": "6", "length": "4", "via": "url"}.items() <= fakes.events.recorded[-1].details.items()
    assert (await downloads.open_download_url(token, ByteRange(6, None, version.etag)))[2:] == (6, 4)
    assert (await downloads.open_download_url(token, ByteRange(None, 3)))[2:] == (7, 3)
    assert (await downloads.open_download_url(token, ByteRange(6, None, '"other content"')))[2:] == (0, 10)
    with pytest.raises(RangeNotSatisfiable) as beyond:
        await downloads.open_download_url(token, ByteRange(10, None))
    assert beyond.value.metadata == {"size": "10"}


# -- public links --------------------------------------------------------------------------------------------


async def test_a_link_lists_its_folder_and_below_and_nothing_else(
    fakes: StorageFakes, tree: Tree, uploads: Uploads, links: PublicLinks
) -> None:
    shared = await tree.create_folder(ALICE, "root", "Shared")
    sub = await tree.create_folder(ALICE, shared.id, "Sub")
    await put(uploads, sub.id, "deep.txt", b"d")
    outside = await tree.create_folder(ALICE, "root", "Private")
    fakes.add_link("tok", shared, "list", "download")

    page, token, chain = await links.link_children("tok", "", "", 0, "")
    assert isinstance(page, FakePage) and page.names == ["Sub"] and token == ""
    assert [n.id for n in chain] == [shared.id]
    page, _, chain = await links.link_children("tok", "", sub.id, 0, "")
    assert isinstance(page, FakePage) and page.names == ["deep.txt"] and [n.id for n in chain] == [shared.id, sub.id]
    for beyond in (outside.id, fakes.root(ALICE).id, "no-such-node", "x" * 65):
        with pytest.raises(NotFound):
            await links.link_children("tok", "", beyond, 0, "")
    with pytest.raises(NotFound):
        await links.link_children("unknown", "", "", 0, "")
    fakes.policy.links["tok"].revoked = True
    with pytest.raises(NotFound):
        await links.link_children("tok", "", sub.id, 0, "")


async def test_a_file_link_lists_that_file_and_counts_downloads(
    fakes: StorageFakes, uploads: Uploads, links: PublicLinks
) -> None:
    file = await put(uploads, "root", "one.txt", b"one")
    fakes.add_link("f", file, "list", "download", max_downloads=1)
    listed_file, token, chain = await links.link_children("f", "", "", 0, "")
    assert listed_file == file and token == "" and [n.id for n in chain] == [file.id]
    node, _version, offset, size = await links.open_link_download("f", "", "")
    assert (node.id, offset, size) == (file.id, 0, 3) and fakes.events.recorded[-1].actor == "link:link-f"
    with pytest.raises(ResourceExhausted):
        await links.open_link_download("f", "", "")
    with pytest.raises(ResourceExhausted):  # a resumed download is a download too: a range is never free
        await links.open_link_download("f", "", "", ByteRange(1, None))


async def test_a_link_download_resumes_by_range_once_the_link_lets_it(
    fakes: StorageFakes, uploads: Uploads, links: PublicLinks
) -> None:
    """A visitor resumes a broken link download by Range; the link is checked first (a dead one is a 404 whatever
    the range), and the owner's activity says which part went out."""
    file = await put(uploads, "root", "one.txt", b"0123456789")
    fakes.add_link("f", file, "list", "download")
    _, version, offset, length = await links.open_link_download("f", "", "", ByteRange(4, 7, '"stale"'))
    assert (offset, length) == (0, 10) and "offset" not in fakes.events.recorded[-1].details
    assert (await links.open_link_download("f", "", "", ByteRange(4, 7, version.etag)))[2:] == (4, 4)
    assert {"offset": "4", "length": "4"}.items() <= fakes.events.recorded[-1].details.items()
    with pytest.raises(RangeNotSatisfiable):
        await links.open_link_download("f", "", "", ByteRange(10, None))
    fakes.policy.links["f"].revoked = True
    with pytest.raises(NotFound):
        await links.open_link_download("f", "", "", ByteRange(10, None))


async def test_file_drops_stop_at_the_links_limits_and_charge_the_owner(
    fakes: StorageFakes, tree: Tree, uploads: Uploads, links: PublicLinks
) -> None:
    inbox = await tree.create_folder(ALICE, "root", "Inbox")
    fakes.add_link("drop", inbox, "upload", max_upload_files=2)
    creator, folder, limits = await links.link_drop("drop", "")
    assert creator == "link:link-drop" and folder.id == inbox.id
    assert (limits.max_files, limits.max_bytes, limits.own_files, limits.own_bytes) == (2, 100, True, False)

    async def drop(name: str, size: int) -> None:
        await uploads.create_upload(creator, "", name, size, "", "", link_parent=folder, drop=limits)

    await drop("a.bin", 60)
    with pytest.raises(ResourceExhausted) as too_big:
        await drop("b.bin", 41)
    assert too_big.value.limit == "storage_link_drop_max_bytes" and "60 taken" in too_big.value.message
    await drop("b.bin", 40)
    with pytest.raises(ResourceExhausted) as too_many:
        await drop("c.bin", 0)
    assert too_many.value.limit == "link max_upload_files"
    assert fakes.usage(ALICE) == (0, 100) and fakes.state.link_drops[creator] == (2, 100)
    with pytest.raises(InvalidArgument) as path:
        await uploads.create_upload(creator, "", "", 1, "", "", "x/y", link_parent=folder, drop=limits)
    assert path.value.field == "relative_path"

    fakes.add_link("view", inbox, "list")
    with pytest.raises(PermissionDenied):
        await links.link_drop("view", "")


# -- housekeeping --------------------------------------------------------------------------------------------


async def test_trash_is_purged_once_older_than_the_retention(
    fakes: StorageFakes, tree: Tree, uploads: Uploads, housekeeping: Housekeeping
) -> None:
    old = await put(uploads, "root", "old.txt", b"12345")
    await tree.delete_node(ALICE, old.id)
    fakes.clock.advance(days=10)
    newer = await put(uploads, "root", "newer.txt", b"67")
    await tree.delete_node(ALICE, newer.id)
    fakes.clock.advance(days=20)
    assert (await housekeeping.run_once())["purged_trash"] == 0  # exactly 30 days: not older yet
    fakes.clock.advance(seconds=1)
    assert (await housekeeping.run_once())["purged_trash"] == 1
    assert old.id not in fakes.state.nodes and old.blob_id not in fakes.blobs.blobs
    assert fakes.node(newer.id).trashed_at is not None and fakes.usage(ALICE) == (2, 0)
    purge = fakes.state.events[-1]
    assert purge.kind == "storage.purge" and purge.details["reason"] == "trash retention"
    fakes.clock.advance(days=10)
    assert (await housekeeping.run_once())["purged_trash"] == 1 and fakes.usage(ALICE) == (0, 0)


async def test_a_finish_whose_worker_died_is_resumed_once_its_lease_lapsed(
    fakes: StorageFakes, uploads: Uploads, housekeeping: Housekeeping
) -> None:
    upload = await uploads.create_upload(ALICE, "root", "f.txt", 4, "", "")
    await uploads.write_chunk(ALICE, upload.id, 0, b"abcd")
    # A replica took it for finishing, then died: FINISHING, held until its lease runs out.
    async with fakes.store.uow() as uow:
        now = fakes.clock.now()
        assert await uow.uploads.acquire(upload.id, "dead", now + timedelta(seconds=60), now, UploadState.FINISHING)
        await uow.commit()
    assert (await housekeeping.run_once())["resumed_finishes"] == 0
    fakes.clock.advance(seconds=61)
    assert (await housekeeping.run_once())["resumed_finishes"] == 1
    await asyncio.gather(*uploads._tasks)
    finished, node = await uploads.get_upload(ALICE, upload.id)
    assert finished.state == UploadState.COMPLETED and node is not None and fakes.content(node.id) == b"abcd"
    assert fakes.usage(ALICE) == (4, 0)
