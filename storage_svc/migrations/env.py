from flowdock_kernel.db import run_migrations_online
from storage_svc.adapters import metadata

run_migrations_online(metadata)
