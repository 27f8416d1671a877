"""Name rules of the tree (pure domain logic)."""

from __future__ import annotations

import pytest

from flowdock_kernel.errors import InvalidArgument
from storage_svc.domain import Cursor, name_key, validate_name


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("../../x", "'/'"),
        ("a/b", "'/'"),
        ("a\\b", "'/'"),
        ("a\x00b", "control"),
        ("a\nb", "control"),
        ("evil\u202egpj.exe", "bidirectional"),
        ("x" * 300, "255 bytes"),
        ("é" * 128, "255 bytes"),
        (".", "'.'"),
        ("..", "'.'"),
        ("", "empty"),
        (" lead", "whitespace"),
        ("trail ", "whitespace"),
        ("dot.", "dot"),
    ],
)
def test_bad_names_are_refused_with_the_field(name: str, why: str) -> None:
    with pytest.raises(InvalidArgument) as exc:
        validate_name(name)
    assert exc.value.field == "name" and why in exc.value.description


def test_names_are_nfc_and_compare_case_insensitively() -> None:
    decomposed = "Cafe\u0301"
    assert validate_name(decomposed) == "Caf\u00e9"
    assert name_key("CAFÉ") == name_key("café")
    assert validate_name("é" * 127) == "é" * 127  # 254 bytes


def test_page_cursor_round_trip_and_garbage() -> None:
    c = Cursor(1, "ä b", "id-1")
    assert Cursor.decode(c.encode()) == c
    with pytest.raises(InvalidArgument) as exc:
        Cursor.decode("not-a-token!")
    assert exc.value.field == "page_token"
