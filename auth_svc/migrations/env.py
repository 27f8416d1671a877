from auth_svc.adapters.tables import metadata
from flowdock_kernel.db import run_migrations_online

run_migrations_online(metadata)
