# syntax=docker/dockerfile:1
#
# FlowDock: one image for every role (auth_svc, storage_svc, share_svc and the Envoy gateway).
# The role is chosen by the command in docker-compose.yml, e.g. `python -m auth_svc serve`.
# No secrets are baked in: everything is configured at run time through FLOWDOCK_* environment variables.

# ---------------------------------------------------------------------------------------------------------
# Build stage: install the distribution (pinned by constraints.txt) into a self-contained virtualenv.
# ---------------------------------------------------------------------------------------------------------
FROM python:3.11-slim AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH

RUN python -m venv /opt/venv

WORKDIR /src

# Metadata and pins first so the dependency layer is cached across source-only changes.
COPY pyproject.toml constraints.txt ./

# Sources (the package-dir mapping in pyproject.toml expects these exact paths).
COPY gen/python/flowdock gen/python/flowdock
COPY clients/python/flowdock_cli clients/python/flowdock_cli
COPY clients/python/flowdock_sdk clients/python/flowdock_sdk
COPY flowdock_kernel flowdock_kernel
COPY flowdock_runtime flowdock_runtime
COPY auth_svc auth_svc
COPY storage_svc storage_svc
COPY share_svc share_svc
COPY dav_svc dav_svc
COPY gateway gateway

RUN pip install --no-cache-dir -c constraints.txt .

# ---------------------------------------------------------------------------------------------------------
# Runtime stage: the virtualenv only, run as an unprivileged user.
# ---------------------------------------------------------------------------------------------------------
FROM python:3.11-slim AS runtime

LABEL org.opencontainers.image.title="flowdock" \
      org.opencontainers.image.description="FlowDock services (auth, storage, share) and Envoy gateway"

# The allocator settings flowdock up uses (docs/performance: 1 MiB message buffers are kept, two arenas at most).
ENV PATH=/opt/venv/bin:$PATH \
    GLIBC_TUNABLES=glibc.malloc.mmap_threshold=67108864:glibc.malloc.trim_threshold=1073741824:glibc.malloc.arena_max=2 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    FLOWDOCK_LISTEN_HOST=0.0.0.0 \
    FLOWDOCK_DATA_DIR=/data \
    FLOWDOCK_LOG_FORMAT=json

# Fixed uid/gid so that volume ownership is predictable. /data is created owned by that user so a fresh
# named volume mounted there inherits the ownership and is writable without running as root.
RUN groupadd --system --gid 10001 flowdock \
 && useradd --system --uid 10001 --gid flowdock --create-home --home-dir /home/flowdock \
        --shell /usr/sbin/nologin flowdock \
 && install -d -o flowdock -g flowdock -m 0750 /data

COPY --from=build /opt/venv /opt/venv

# The descriptor set Envoy's transcoder needs ships inside the generated `flowdock` package (package data).
WORKDIR /app

USER 10001:10001

VOLUME ["/data"]

# gRPC: auth 50051, storage 50052, share 50053; metrics: 9101-9103; gateway HTTP 8080, Envoy admin 9901.
EXPOSE 50051 50052 50053 9101 9102 9103 8080 9901

# No default role: docker-compose.yml sets the command for each container.
CMD ["python", "-c", "import sys; sys.exit('flowdock image: run one of `python -m auth_svc serve`, `python -m storage_svc serve`, `python -m share_svc serve`, `python -m gateway serve ...`')"]
