"""The small-file path of create + write + finish (issue 15 item 3; storage_small_upload_bytes): CreateUpload stages
nothing, a chunk carrying the whole file is written once as the final blob and completes the upload in one
transaction, FinishUpload only reads. Everything else keeps the resumable path's answers (tests over the use cases'
in-memory fakes; the real blob store, databases and gateway: tests/storage/test_small_uploads_real.py and
tests/e2e/test_small_files_crash.py)."""

from __future__ import annotations

import pytest

from flowdock_kernel.errors import Aborted, FailedPrecondition, NotFound, TooLarge
from storage_svc.domain import OnConflict, UploadState
from storage_svc.usecases import Uploads
from tests.support.fakes_storage import INFECTED, SIGNATURE, StorageFakes, sha256, small_limits

ALICE, BOB = "alice", "bob"


@pytest.fixture
def fakes() -> StorageFakes:
    return StorageFakes(limits=small_limits(small_upload_bytes=32))


@pytest.fixture
def uploads(fakes: StorageFakes) -> Uploads:
    return fakes.uploads()


async def test_a_whole_small_file_in_one_chunk_completes_with_one_blob_write(
    fakes: StorageFakes, uploads: Uploads
) -> None:
    data = b"hello, world"
    upload = await uploads.create_upload(ALICE, "root", "hello.txt", len(data), sha256(data), "text/plain")
    assert upload.state == UploadState.OPEN and fakes.blobs.staging == {}  # create staged nothing
    assert fakes.usage(ALICE) == (0, len(data))
    assert await uploads.write_chunk(ALICE, upload.id, 0, data) == len(data)
    # Acknowledged: the file is there already, its bytes in one blob, the reservation settled exactly.
    assert fakes.blobs.staging == {} and fakes.blobs.syncs == 0 and len(fakes.blobs.blobs) == 1
    assert fakes.usage(ALICE) == (len(data), 0) and fakes.event_kinds() == ["storage.upload"]
    assert fakes.scanner.scanned == [data]  # scanned once, in memory, before anything was written
    row = fakes.state.uploads[upload.id]
    assert (row.state, row.committed_size, row.writer) == (UploadState.COMPLETED, len(data), "")
    finished, node = await uploads.finish_upload(ALICE, upload.id)
    assert finished.state == UploadState.COMPLETED and node is not None and finished.node_id == node.id
    assert (node.name, node.size, node.sha256, node.content_type) == ("hello.txt", 12, sha256(data), "text/plain")
    assert fakes.content(node.id) == data and fakes.live_names(fakes.root(ALICE).id) == ["hello.txt"]
    assert (await uploads.finish_upload(ALICE, upload.id))[0].state == UploadState.COMPLETED  # finishing twice
    # Nothing more goes in, and there is nothing to abort.
    with pytest.raises(FailedPrecondition, match="completed"):
        await uploads.write_chunk(ALICE, upload.id, 0, data)
    with pytest.raises(FailedPrecondition, match="already finished"):
        await uploads.abort_upload(ALICE, upload.id)
    assert len(fakes.blobs.blobs) == 1 and fakes.usage(ALICE) == (len(data), 0)


async def test_a_crash_after_the_acknowledgement_loses_nothing(fakes: StorageFakes, uploads: Uploads) -> None:
    data = b"durable"
    upload = await uploads.create_upload(ALICE, "root", "d.txt", len(data), "", "")
    assert await uploads.write_chunk(ALICE, upload.id, 0, data) == len(data)
    fakes.blobs.crash()
    restarted = fakes.uploads()  # a new process: no hash cache, no memory of the chunk
    finished, node = await restarted.finish_upload(ALICE, upload.id)
    assert finished.state == UploadState.COMPLETED and node is not None and fakes.content(node.id) == data
    assert node.sha256 == sha256(data)


async def test_partial_chunks_of_a_small_upload_take_the_resumable_path(fakes: StorageFakes, uploads: Uploads) -> None:
    data = b"0123456789abcdef"
    upload = await uploads.create_upload(ALICE, "root", "p.txt", len(data), sha256(data), "")
    assert await uploads.write_chunk(ALICE, upload.id, 0, data[:6]) == 6
    assert upload.id in fakes.blobs.staging and fakes.blobs.durable[upload.id] == 6  # staged at its first write
    assert fakes.blobs.blobs == {} and fakes.state.uploads[upload.id].state == UploadState.OPEN
    with pytest.raises(FailedPrecondition) as wrong:  # the whole file again at 0: the offset is 6 now
        await uploads.write_chunk(ALICE, upload.id, 0, data)
    assert wrong.value.reason == "UPLOAD_OFFSET_MISMATCH" and fakes.blobs.blobs == {}
    assert await uploads.write_chunk(ALICE, upload.id, 6, data[6:]) == len(data)
    finished, node = await uploads.finish_upload(ALICE, upload.id)
    assert finished.state == UploadState.COMPLETED and node is not None and fakes.content(node.id) == data
    assert fakes.blobs.staging == {} and fakes.usage(ALICE) == (len(data), 0)


async def test_a_whole_chunk_while_another_writer_holds_the_upload_is_refused_and_leaves_no_blob(
    fakes: StorageFakes, uploads: Uploads
) -> None:
    data = b"0123456789"
    upload = await uploads.create_upload(ALICE, "root", "w.txt", len(data), "", "")
    writer = uploads.writer(ALICE, upload.id)
    await writer.open(0)
    await writer.write(b"XYZ")
    await writer.settle()
    # While it holds the upload, a whole chunk gets the resumable path's answer and leaves no blob behind.
    with pytest.raises(Aborted):
        await uploads.write_chunk(ALICE, upload.id, 0, data)
    assert fakes.blobs.blobs == {}
    await writer.close()  # never flushed: nothing acknowledged
    assert await uploads.write_chunk(ALICE, upload.id, 0, data) == len(data)
    _finished, node = await uploads.finish_upload(ALICE, upload.id)
    assert node is not None and fakes.content(node.id) == data


@pytest.mark.parametrize("why", ["checksum", "virus", "name-taken"])
async def test_content_finishing_refuses_is_staged_and_refused_as_before(
    fakes: StorageFakes, uploads: Uploads, why: str
) -> None:
    data = b"<" + INFECTED + b">" if why == "virus" else b"abcd"
    declared = sha256(b"abce") if why == "checksum" else ""
    upload = await uploads.create_upload(ALICE, "root", "r.txt", len(data), declared, "")
    if why == "name-taken":
        await uploads.upload_inline(ALICE, "root", "R.TXT", b"x", 1, "", "")
    assert await uploads.write_chunk(ALICE, upload.id, 0, data) == len(data)  # acknowledged, as before
    assert fakes.state.uploads[upload.id].state == UploadState.OPEN and upload.id in fakes.blobs.staging
    finished, node = await uploads.finish_upload(ALICE, upload.id)
    assert finished.state == UploadState.FAILED and node is None
    expected = {"checksum": "not the declared", "virus": SIGNATURE, "name-taken": "appeared in the folder"}[why]
    assert expected in finished.failure
    taken = 1 if why == "name-taken" else 0
    assert len(fakes.blobs.blobs) == taken and fakes.blobs.staging == {} and fakes.usage(ALICE) == (taken, 0)


async def test_new_version_and_rename_policies_apply_at_the_whole_chunk(fakes: StorageFakes, uploads: Uploads) -> None:
    first, _ = await uploads.upload_inline(ALICE, "root", "v.txt", b"one", 3, "", "")
    again = await uploads.create_upload(ALICE, "root", "v.txt", 3, "", "", on_conflict=OnConflict.NEW_VERSION)
    await uploads.write_chunk(ALICE, again.id, 0, b"two")
    renamed = await uploads.create_upload(ALICE, "root", "v.txt", 5, "", "", on_conflict=OnConflict.RENAME)
    await uploads.write_chunk(ALICE, renamed.id, 0, b"three")
    _, node = await uploads.finish_upload(ALICE, again.id)
    assert node is not None and node.id == first.node_id and fakes.content(node.id) == b"two"
    _, other = await uploads.finish_upload(ALICE, renamed.id)
    assert other is not None and other.name != "v.txt" and fakes.content(other.id) == b"three"
    assert sorted(fakes.live_names(fakes.root(ALICE).id)) == sorted(["v.txt", other.name])
    assert fakes.usage(ALICE) == (3 + 3 + 5, 0)


async def test_an_empty_small_upload_finishes_without_a_staging_file(fakes: StorageFakes, uploads: Uploads) -> None:
    upload = await uploads.create_upload(ALICE, "root", "empty.txt", 0, "", "")
    assert fakes.blobs.staging == {}
    finished, node = await uploads.finish_upload(ALICE, upload.id)
    assert finished.state == UploadState.COMPLETED and node is not None and fakes.content(node.id) == b""
    assert node.sha256 == sha256(b"")


async def test_the_whole_chunk_keeps_the_checks_of_a_chunk(fakes: StorageFakes, uploads: Uploads) -> None:
    upload = await uploads.create_upload(ALICE, "root", "c.txt", 4, "", "")
    with pytest.raises(NotFound):  # another user's upload
        await uploads.write_chunk(BOB, upload.id, 0, b"abcd")
    fakes.limits = small_limits(small_upload_bytes=32, max_chunk_bytes=2)
    with pytest.raises(TooLarge):
        await fakes.uploads().write_chunk(ALICE, upload.id, 0, b"abcd")
    assert fakes.blobs.blobs == {} and fakes.state.uploads[upload.id].committed_size == 0


async def test_above_the_threshold_create_stages_as_before(fakes: StorageFakes, uploads: Uploads) -> None:
    data = bytes(range(40))
    upload = await uploads.create_upload(ALICE, "root", "big.bin", len(data), "", "")
    assert upload.id in fakes.blobs.staging
    assert await uploads.write_chunk(ALICE, upload.id, 0, data) == len(data)
    assert fakes.state.uploads[upload.id].state == UploadState.OPEN and fakes.blobs.blobs == {}
    _finished, node = await uploads.finish_upload(ALICE, upload.id)
    assert node is not None and fakes.content(node.id) == data
