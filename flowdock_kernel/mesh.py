"""The mesh's identities: a private CA, one certificate per service (SAN = the identity), and the one place that
turns settings into gRPC credentials.

Every service, and Envoy towards the services, talks mutual TLS: a server accepts only clients with a certificate
from the mesh CA, and the CallInterceptor reads the caller's identity from the certificate's SAN to decide which
internal methods it may call and whether its forwarded client address counts. `flowdock up` (or
`python -m flowdock_kernel.mesh init DIR`, the compose init step) creates the CA and the certificates once in the
data folder: folder 0700, keys 0600.

Plaintext (mesh_tls=off) exists only for a single service started on its own (unit tests, a debugger): there is
no identity then, so every caller is trusted as before this layer existed. Never in a deployment.
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

#: The gateway's identity: the only caller whose X-Forwarded-For is believed.
GATEWAY = "gateway"
#: Every identity `flowdock up` and the compose init step issue.
IDENTITIES: tuple[str, ...] = ("auth_svc", "storage_svc", "share_svc", "dav_svc", GATEWAY)
CA_CERT = "ca.pem"
CA_KEY = "ca.key"
CERT_DAYS = 825
CA_DAYS = 3650


class MeshError(Exception):
    """The mesh identity files cannot be used; the message says which and what to do."""


def identity_of(service: str) -> str:
    """`auth` -> `auth_svc` (the gateway is `gateway`)."""
    return service if service == GATEWAY or service.endswith("_svc") else f"{service}_svc"


def cert_path(folder: Path, identity: str) -> Path:
    return folder / f"{identity}.pem"


def key_path(folder: Path, identity: str) -> Path:
    return folder / f"{identity}.key"


def _write_private(path: Path, data: bytes) -> None:
    """Create with 0600 from the start (no window where the key is world-readable), then move into place."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o600)
    tmp.replace(path)


def _write_public(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, 0o644)
    tmp.replace(path)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _load_ca(folder: Path) -> tuple[object, object]:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert = x509.load_pem_x509_certificate((folder / CA_CERT).read_bytes())
    key = serialization.load_pem_private_key((folder / CA_KEY).read_bytes(), password=None)
    return cert, key


def ensure_ca(folder: Path) -> None:
    """The mesh CA (ECDSA P-256), created once; an existing CA is kept."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    if (folder / CA_CERT).exists() and (folder / CA_KEY).exists():
        return
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "FlowDock mesh CA")])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    _write_private(
        folder / CA_KEY,
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )
    _write_public(folder / CA_CERT, cert.public_bytes(serialization.Encoding.PEM))


def issue(folder: Path, identity: str, *, hosts: Iterable[str] = ()) -> tuple[Path, Path]:
    """A certificate for `identity` (DNS SAN = identity, plus `hosts`), signed by the mesh CA in `folder`; for
    both client and server use. Overwrites an existing one."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    ca_cert, ca_key = _load_ca(folder)
    if not isinstance(ca_cert, x509.Certificate) or not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise MeshError(f"{folder / CA_KEY} is not the ECDSA key of the mesh CA")
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(identity)]
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, identity)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CERT_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key_file, cert_file = key_path(folder, identity), cert_path(folder, identity)
    _write_private(
        key_file,
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )
    _write_public(cert_file, cert.public_bytes(serialization.Encoding.PEM))
    return cert_file, key_file


def ensure_mesh(folder: Path, identities: Iterable[str] = IDENTITIES) -> None:
    """CA plus one certificate per identity; what exists is kept (a restart does not re-key the mesh)."""
    ensure_ca(folder)
    for identity in identities:
        if not (cert_path(folder, identity).exists() and key_path(folder, identity).exists()):
            issue(folder, identity)


def ensure_edge_certificate(folder: Path, hosts: list[str]) -> tuple[Path, Path]:
    """A first-start certificate for the public listener: its own small CA (folder/ca.pem, what clients trust)
    and a leaf for `hosts` at folder/cert.pem + key.pem. An existing cert.pem (yours, mounted) is kept."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    if cert.exists() and key.exists():
        return cert, key
    ensure_ca(folder)
    issued_cert, issued_key = issue(folder, hosts[0], hosts=hosts[1:])
    issued_key.replace(key)
    issued_cert.replace(cert)
    return cert, key


@dataclass(frozen=True)
class MeshTls:
    """Where one process finds its mesh identity; builds gRPC credentials (the only place that does)."""

    ca_file: Path
    cert_file: Path
    key_file: Path

    @classmethod
    def in_folder(cls, folder: Path, identity: str) -> MeshTls:
        return cls(folder / CA_CERT, cert_path(folder, identity), key_path(folder, identity))

    def _read(self) -> tuple[bytes, bytes, bytes]:
        try:
            return self.ca_file.read_bytes(), self.key_file.read_bytes(), self.cert_file.read_bytes()
        except OSError as exc:
            raise MeshError(
                f"mesh TLS file {exc.filename} is missing or unreadable ({exc.strerror}); create the mesh "
                "certificates with `python -m flowdock_kernel.mesh init DATA_DIR/mesh` (flowdock up does it)"
            ) from None

    def server_credentials(self) -> object:
        import grpc

        ca, key, chain = self._read()
        return grpc.ssl_server_credentials([(key, chain)], root_certificates=ca, require_client_auth=True)

    def channel_credentials(self) -> object:
        import grpc

        ca, key, chain = self._read()
        return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=chain)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flowdock_kernel.mesh", description="Create the mesh CA and service certificates."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("init", help="create what is missing (CA, one certificate per identity) in FOLDER")
    p.add_argument("folder", type=Path)
    p.add_argument("identities", nargs="*", default=list(IDENTITIES))
    p.add_argument("--owner", help="uid:gid to give the folder and files (compose: the services' user)")
    p.add_argument(
        "--split",
        action="store_true",
        help="also copy each identity's files (ca.pem, <identity>.pem/.key, never ca.key) into FOLDER/<identity>/, "
        "so each container mounts only its own",
    )
    e = sub.add_parser("edge", help="a self-signed (own CA) certificate for the public listener, if none is there")
    e.add_argument("folder", type=Path)
    e.add_argument("--host", action="append", default=[], help="DNS name or IP in the certificate (repeatable)")
    e.add_argument("--owner", help="uid:gid to give the folder and files")
    args = parser.parse_args(argv)
    if args.command == "edge":
        cert, _ = ensure_edge_certificate(args.folder, args.host or ["localhost", "127.0.0.1"])
        print(f"edge certificate: {cert} (clients trust {args.folder / CA_CERT})")
    else:
        ensure_mesh(args.folder, args.identities)
        if args.split:
            for identity in args.identities:
                split(args.folder, identity)
        print(f"mesh certificates in {args.folder}: {', '.join(args.identities)}")
    if args.owner:
        uid, _, gid = args.owner.partition(":")
        for path in [args.folder, *args.folder.rglob("*")]:
            os.chown(path, int(uid), int(gid or uid))
    return 0


def split(folder: Path, identity: str) -> Path:
    """FOLDER/<identity>/ holding what that identity needs and nothing else (no CA key, no other identity's key)."""
    own = folder / identity
    own.mkdir(exist_ok=True)
    os.chmod(own, 0o700)
    _write_public(own / CA_CERT, (folder / CA_CERT).read_bytes())
    _write_public(cert_path(own, identity), cert_path(folder, identity).read_bytes())
    _write_private(key_path(own, identity), key_path(folder, identity).read_bytes())
    return own


if __name__ == "__main__":
    sys.exit(main())
