"""The rules of one upload (storage_svc.domain.Upload), pure: which bytes it takes where, when it can finish, where
its content goes, and what a writer finding it held is told."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from flowdock_kernel.errors import Aborted, FailedPrecondition, InvalidArgument, TooLarge
from storage_svc.domain import Upload, UploadState, offset_mismatch, upload_blob_id

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=60)


def upload(**changes: object) -> Upload:
    base = Upload(
        id="0f8e4c1a-2b3d-4e5f-8a9b-0c1d2e3f4a5b",
        owner_id="owner",
        parent_id="folder",
        name="a.bin",
        size=100,
        sha256="",
        content_type="application/octet-stream",
        committed_size=40,
        state=UploadState.OPEN,
        created_at=T0,
        expires_at=T0 + timedelta(hours=24),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_a_chunk_within_the_declared_size_and_the_chunk_limit_is_accepted() -> None:
    upload().check_chunk(40, 60, max_chunk_bytes=60)  # ends exactly at the declared size
    upload().check_chunk(100, 0, max_chunk_bytes=1)  # an empty chunk at the end


def test_a_chunk_past_the_declared_size_is_refused_naming_the_field() -> None:
    with pytest.raises(InvalidArgument) as caught:
        upload().check_chunk(40, 61, max_chunk_bytes=1000)
    assert caught.value.field == "data"
    assert "offset 101 exceed the declared size 100" in caught.value.message


def test_a_chunk_over_the_chunk_limit_is_too_large_naming_the_setting() -> None:
    with pytest.raises(TooLarge) as caught:
        upload().check_chunk(40, 11, max_chunk_bytes=10)
    assert caught.value.limit == "storage_max_chunk_bytes"


@pytest.mark.parametrize("state", [UploadState.FINISHING, UploadState.COMPLETED, UploadState.FAILED])
def test_only_an_open_upload_takes_bytes(state: UploadState) -> None:
    with pytest.raises(FailedPrecondition, match=f"upload is {state.value}; it takes no more bytes"):
        upload(state=state).check_chunk(40, 1, max_chunk_bytes=10)


def test_a_writer_resumes_exactly_at_the_committed_size() -> None:
    upload().check_resume(40)
    with pytest.raises(FailedPrecondition) as caught:
        upload().check_resume(39)
    assert caught.value.reason == "UPLOAD_OFFSET_MISMATCH"
    assert caught.value.metadata == {"committed_size": "40"}
    assert "resume at offset 40" in caught.value.message


def test_resuming_checks_the_state_and_the_size_before_the_offset() -> None:
    with pytest.raises(FailedPrecondition, match="it takes no more bytes"):
        upload(state=UploadState.COMPLETED).check_resume(39)
    with pytest.raises(InvalidArgument):
        upload().check_resume(101)


def test_an_open_upload_finishes_only_once_every_byte_arrived() -> None:
    with pytest.raises(FailedPrecondition) as caught:
        upload().check_finish()
    assert caught.value.reason == "UPLOAD_INCOMPLETE"
    assert caught.value.metadata == {"committed_size": "40"}
    upload(committed_size=100).check_finish()
    upload(state=UploadState.FINISHING).check_finish()  # a finish in progress is polled, not refused here


def test_completed_and_failed_uploads_are_finished() -> None:
    assert upload(state=UploadState.COMPLETED).finished
    assert upload(state=UploadState.FAILED).finished
    assert not upload(state=UploadState.OPEN).finished
    assert not upload(state=UploadState.FINISHING).finished


def test_the_blob_id_derives_from_the_upload_id() -> None:
    assert upload().blob_id == "0f8e4c1a2b3d4e5f8a9b0c1d2e3f4a5b"
    assert upload_blob_id(upload().id) == upload().blob_id  # the one-call path names it before the row exists


def test_a_held_upload_says_when_to_look_again() -> None:
    # A lease lapsing in 2.2 s: retry in 3 s.
    held = upload(writer_until=T0 + timedelta(seconds=2.2)).held(T0, LEASE)
    assert isinstance(held, Aborted)
    assert held.retry_after_seconds == 3
    assert "lapses in 3 s" in held.message
    # A live writer's lease far away: at most a few seconds, since it may stop any moment.
    assert upload(writer_until=T0 + timedelta(seconds=50)).held(T0, LEASE).retry_after_seconds == 5
    # Lapsed already (or no lease known): at least 1 s.
    assert upload(writer_until=T0 - timedelta(seconds=5)).held(T0, LEASE).retry_after_seconds == 1
    assert upload().held(T0, LEASE).retry_after_seconds == 5


def test_an_offset_mismatch_names_where_to_resume() -> None:
    error = offset_mismatch(7, 4)
    assert (error.reason, error.metadata) == ("UPLOAD_OFFSET_MISMATCH", {"committed_size": "4"})
