"""`python -m storage_svc serve|migrate`."""

from flowdock_kernel.server import service_main
from storage_svc import bootstrap
from storage_svc.config import StorageConfig

if __name__ == "__main__":
    service_main(
        name=bootstrap.NAME,
        description="FlowDock folders, files and transfers service.",
        config_cls=StorageConfig,
        migrate=bootstrap.migrate,
        build=bootstrap.build,
    )
