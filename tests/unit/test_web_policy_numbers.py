"""The web app's Help, Terms and Privacy pages quote the server's defaults (clients/web/src/pages/policy.ts): they
must be the defaults the services really start with, so a changed default cannot leave the pages saying otherwise."""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

from auth_svc.config import AuthConfig
from share_svc import domain as share_domain
from share_svc.config import ShareConfig
from storage_svc.config import StorageConfig

POLICY = Path(__file__).resolve().parents[2] / "clients" / "web" / "src" / "pages" / "policy.ts"


def quoted() -> dict[str, int]:
    """`name: <integer or product of integers>,` lines of the DEFAULTS object, evaluated."""
    block = POLICY.read_text().split("export const DEFAULTS = {", 1)[1].split("} as const", 1)[0]
    found: dict[str, int] = {}
    for name, expr in re.findall(r"^\s*(\w+): ([\d\s*]+),$", block, re.MULTILINE):
        found[name] = math.prod(int(factor) for factor in expr.split("*"))  # products like 7 * 86400
    return found


def defaults() -> dict[str, object]:
    out: dict[str, object] = {}
    for config in (AuthConfig, ShareConfig, StorageConfig):
        for f in dataclasses.fields(config):
            if f.default is not dataclasses.MISSING:
                out[f.name] = f.default
    return out


def test_every_number_the_pages_quote_is_the_default() -> None:
    numbers, real = quoted(), defaults()
    assert len(numbers) >= 10  # the parse found the object
    for name, value in numbers.items():
        assert name in real, f"policy.ts quotes {name}, which is no setting"
        assert real[name] == value, f"policy.ts says {name} = {value}; the default is {real[name]}"


def test_link_password_rule_is_share_svcs() -> None:
    text = POLICY.read_text()
    assert f"min: {share_domain.MIN_LINK_PASSWORD}, max: {share_domain.MAX_LINK_PASSWORD}" in text
