"""What the contract says about access: public methods are read from the `(flowdock.api.v1.public)` option,
internal services from `(flowdock.api.v1.internal)`; who may call an internal method is declared next to the service."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from google.protobuf.descriptor import ServiceDescriptor

from flowdock.api.v1 import options_pb2


def method_path(service: ServiceDescriptor, method_name: str) -> str:
    return f"/{service.full_name}/{method_name}"


def public_methods(*services: ServiceDescriptor) -> set[str]:
    return {
        method_path(s, m.name) for s in services for m in s.methods if m.GetOptions().Extensions[options_pb2.public]
    }


def internal_methods(*services: ServiceDescriptor) -> set[str]:
    """Every method of the services the contract marks `(flowdock.api.v1.internal)`: callable by services only."""
    return {
        method_path(s, m.name) for s in services if s.GetOptions().Extensions[options_pb2.internal] for m in s.methods
    }


def internal_callers(
    services: list[ServiceDescriptor], callers: Mapping[str, Collection[str]]
) -> dict[str, frozenset[str]]:
    """Which mesh identities may call each internal method, from `{"Service.Method": {"storage_svc", ...}}` declared
    next to the service. Every internal method must be listed (a new one fails at start, not open by default), and
    every listed name must be an internal method."""
    by_short = {f"{s.name}.{m.name}": method_path(s, m.name) for s in services for m in s.methods}
    internal = internal_methods(*services)
    unknown = sorted(k for k in callers if by_short.get(k) not in internal)
    if unknown:
        raise ValueError(f"not internal methods of these services: {', '.join(unknown)}")
    out = {by_short[k]: frozenset(v) for k, v in callers.items()}
    missing = sorted(internal - set(out))
    if missing:
        raise ValueError(f"internal methods with no declared callers: {', '.join(missing)}")
    return out
