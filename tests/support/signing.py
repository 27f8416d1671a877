"""auth_svc's real signing key, read from its database the way auth_svc reads it (tests forge tokens with it).

The private key is sealed under the key file outside the database (docs/security.md, "Secrets at rest"), so the
row alone is not enough: this opens it with that file, as auth_svc's adapter does.
"""

from __future__ import annotations

import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auth_svc.adapters import signing_context
from auth_svc.secretbox import SecretBox
from tests.support.mesh import Running


def newest_signing_key(mesh: Running) -> tuple[str, Ed25519PrivateKey]:
    """(kid, private key) of the newest signing key of the `flowdock up` in `mesh` (default key file location)."""
    engine = sa.create_engine(mesh.service_db_url("auth"))
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT kid, private_pem FROM signing_keys ORDER BY created_at DESC")).first()
    engine.dispose()
    assert row is not None, "auth_svc has no signing key yet"
    box = SecretBox((mesh.data_dir / "auth-secrets.key").read_bytes())
    pem = box.open(row.private_pem, signing_context(row.kid))
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    return str(row.kid), key
