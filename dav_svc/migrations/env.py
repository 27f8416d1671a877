from dav_svc.stores import metadata
from flowdock_kernel.db import run_migrations_online

run_migrations_online(metadata)
