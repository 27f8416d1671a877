"""Read the routed surface of the API from the compiled contract (a FileDescriptorSet).

The gateway never keeps its own list of routes or public methods: everything is derived from
`google.api.http` annotations and the `flowdock.api.v1` options, so the contract stays the single
source of truth for jwt_authn rules, routes and the transcoder.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2

try:  # The generated package is importable once the project is installed...
    from flowdock.api.v1 import options_pb2
except ImportError:  # ...and from a plain checkout through the repo's gen/python folder.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "gen" / "python"))
    from flowdock.api.v1 import options_pb2

__all__ = [
    "DescriptorError",
    "HttpBinding",
    "RoutedMethod",
    "RoutedService",
    "cluster_for_package",
    "load_services",
    "template_to_regex",
]

_VERBS = ("get", "put", "post", "delete", "patch")


class DescriptorError(Exception):
    """The descriptor set is missing, unreadable, or its HTTP annotations are unusable."""


@dataclass(frozen=True, kw_only=True)
class HttpBinding:
    """One REST binding of a method: `GET /api/v1/nodes/{node_id}`."""

    verb: str
    template: str

    @property
    def is_literal(self) -> bool:
        """True when the template has no variables, so an exact path match is enough."""
        return "{" not in self.template and "*" not in self.template

    @property
    def path_regex(self) -> str:
        """RE2 regex (full match) for the paths this binding accepts."""
        return template_to_regex(self.template)


@dataclass(frozen=True, kw_only=True)
class RoutedMethod:
    """A method as the gateway sees it: gRPC path, access level, streaming shape, REST bindings."""

    name: str
    grpc_path: str
    public: bool
    #: REST answers to `compact=true` print set fields only (options.proto: sparse_json).
    sparse_json: bool
    client_streaming: bool
    server_streaming: bool
    http: tuple[HttpBinding, ...]


@dataclass(frozen=True, kw_only=True)
class RoutedService:
    """A service the gateway routes (never one marked `(flowdock.api.v1.internal)`)."""

    full_name: str
    package: str
    cluster: str
    methods: tuple[RoutedMethod, ...]


def cluster_for_package(package: str) -> str:
    """Map `flowdock.storage.v1` to the upstream cluster name `storage`."""
    parts = package.split(".")
    if len(parts) < 2 or parts[0] != "flowdock":
        raise DescriptorError(f"package {package!r} is not a flowdock.<service>.<version> package")
    return parts[1]


def _bindings(rule: http_pb2.HttpRule) -> list[HttpBinding]:
    """Flatten one HttpRule and its additional_bindings into (verb, template) pairs."""
    out: list[HttpBinding] = []
    pattern = rule.WhichOneof("pattern")
    if pattern in _VERBS:
        out.append(HttpBinding(verb=pattern.upper(), template=getattr(rule, pattern)))
    elif pattern == "custom":
        out.append(HttpBinding(verb=rule.custom.kind.upper(), template=rule.custom.path))
    for extra in rule.additional_bindings:
        out.extend(_bindings(extra))
    return out


def _read(descriptor_path: Path) -> descriptor_pb2.FileDescriptorSet:
    try:
        data = Path(descriptor_path).read_bytes()
    except OSError as exc:
        raise DescriptorError(f"cannot read descriptor set {descriptor_path}: {exc}") from exc
    return descriptor_pb2.FileDescriptorSet.FromString(data)


def load_services(descriptor_path: Path) -> list[RoutedService]:
    """Parse the descriptor set and return the routed services, in file order."""
    fds = _read(descriptor_path)
    services: list[RoutedService] = []
    for file in fds.file:
        for svc in file.service:
            if svc.options.Extensions[options_pb2.internal]:
                continue
            full_name = f"{file.package}.{svc.name}"
            methods = tuple(
                RoutedMethod(
                    name=m.name,
                    grpc_path=f"/{full_name}/{m.name}",
                    public=m.options.Extensions[options_pb2.public],
                    sparse_json=m.options.Extensions[options_pb2.sparse_json],
                    client_streaming=m.client_streaming,
                    server_streaming=m.server_streaming,
                    http=tuple(_bindings(m.options.Extensions[annotations_pb2.http])),
                )
                for m in svc.method
            )
            services.append(
                RoutedService(
                    full_name=full_name,
                    package=file.package,
                    cluster=cluster_for_package(file.package),
                    methods=methods,
                )
            )
    if not services:
        raise DescriptorError(f"{descriptor_path} defines no routed service")
    return services


_RE2_META = re.compile(r"([\\.^$|?*+()\[\]{}])")
_VARIABLE = re.compile(r"\{([^}=]+)(?:=([^}]*))?\}")


def _escape(literal: str) -> str:
    """Escape RE2 metacharacters in a literal path piece."""
    return _RE2_META.sub(r"\\\1", literal)


def _segments_regex(pattern: str) -> str:
    """Regex for a segment pattern such as `*`, `**`, `folders/*`."""
    parts: list[str] = []
    for seg in pattern.split("/"):
        if seg == "**":
            parts.append("[^?#]*")
        elif seg == "*":
            parts.append("[^/]+")
        else:
            parts.append(_escape(seg))
    return "/".join(parts)


def template_to_regex(template: str) -> str:
    """Convert a google.api.http path template into an RE2 full-match regex.

    `{x}` is one segment, `{x=a/*}` follows its own pattern, `*`/`**` are one/any segments;
    a trailing slash is tolerated so a rule can never be sidestepped by adding one.
    """
    verb = ""
    # A custom verb suffix ":verb" sits after the last segment (outside any variable).
    last = template.rsplit("/", 1)[-1]
    if ":" in last and "}" not in last.split(":", 1)[1]:
        template, verb = template.rsplit(":", 1)
    out: list[str] = []
    pos = 0
    for match in _VARIABLE.finditer(template):
        out.append(_segments_regex(template[pos : match.start()]))
        out.append(_segments_regex(match.group(2) or "*"))
        pos = match.end()
    out.append(_segments_regex(template[pos:]))
    regex = "".join(out)
    if verb:
        regex += ":" + _escape(verb)
    return regex + "/?"
