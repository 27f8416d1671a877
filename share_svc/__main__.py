"""`python -m share_svc serve|migrate`."""

from flowdock_kernel.server import service_main
from share_svc import bootstrap
from share_svc.config import ShareConfig

if __name__ == "__main__":
    service_main(
        name=bootstrap.NAME,
        description="FlowDock shares and access decisions service.",
        config_cls=ShareConfig,
        migrate=bootstrap.migrate,
        build=bootstrap.build,
    )
