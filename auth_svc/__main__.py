"""`python -m auth_svc serve|migrate`."""

from auth_svc import bootstrap
from auth_svc.config import AuthConfig
from flowdock_kernel.server import service_main

if __name__ == "__main__":
    service_main(
        name=bootstrap.NAME,
        description="FlowDock accounts and tokens service.",
        config_cls=AuthConfig,
        migrate=bootstrap.migrate,
        build=bootstrap.build,
    )
