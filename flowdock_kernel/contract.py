"""What the contract says about access: public methods are read from the `(flowdock.api.v1.public)` option."""

from __future__ import annotations

from google.protobuf.descriptor import ServiceDescriptor

from flowdock.api.v1 import options_pb2


def method_path(service: ServiceDescriptor, method_name: str) -> str:
    return f"/{service.full_name}/{method_name}"


def public_methods(*services: ServiceDescriptor) -> set[str]:
    return {
        method_path(s, m.name) for s in services for m in s.methods if m.GetOptions().Extensions[options_pb2.public]
    }
