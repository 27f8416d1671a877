"""FlowDock's gateway: one Envoy in front of the gRPC services, configured from the API contract.

Example::

    from gateway import GatewaySpec, build_bootstrap
    spec = GatewaySpec(descriptor_path=DESCRIPTOR, upstreams={"auth": [("127.0.0.1", 50051)]})
"""

from gateway.descriptor import DescriptorError, RoutedMethod, RoutedService, load_services
from gateway.envoy_config import GatewaySpec, build_bootstrap

__all__ = [
    "DescriptorError",
    "GatewaySpec",
    "RoutedMethod",
    "RoutedService",
    "build_bootstrap",
    "load_services",
]
