# syntax=docker/dockerfile:1.7
# Session service image. Build from the repository root (the build context must hold
# pyproject.toml, protos/ and both packages; /.dockerignore keeps everything else out):
#   docker build -f deploy/docker/session-service.Dockerfile -t tggod/session-service:0.1.0 .
# Base images are pinned by exact tag; pin by digest as well (`python:3.11.14-slim-bookworm@sha256:…`)
# where the registry is reachable when the image is released.

# --- builder: generate the gRPC stubs, build the wheel, install it into a self-contained venv ---
FROM python:3.11.14-slim-bookworm AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

# Code generators and the build frontend live in their own venv so none of them reaches the image.
RUN python -m venv /opt/build \
 && /opt/build/bin/pip install "grpcio-tools==1.85.1" "mypy-protobuf==5.1.0"

WORKDIR /src
COPY pyproject.toml README.md ./
COPY protos/tggod protos/tggod
COPY session_service session_service
COPY thumbnail_service thumbnail_service

# The same invocation as `make proto`: messages, gRPC stubs and .pyi stubs under protos/gen/python,
# which pyproject maps onto the `tggod` package.
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN mkdir -p protos/gen/python \
 && find protos/tggod -name '*.proto' -print0 \
    | xargs -0 env PATH="/opt/build/bin:$PATH" /opt/build/bin/python -m grpc_tools.protoc -I protos \
        --python_out=protos/gen/python --grpc_python_out=protos/gen/python \
        --mypy_out=protos/gen/python --mypy_grpc_out=protos/gen/python \
 && find protos/gen/python/tggod -type d -exec touch {}/__init__.py \; \
 && touch protos/gen/python/tggod/py.typed \
 && /opt/build/bin/pip wheel --no-deps --wheel-dir /dist .

# The runtime venv gets the wheel and its dependencies only: no compilers, no build tools.
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install /dist/tggod_services-*.whl \
 && /opt/venv/bin/python -c "import session_service.server"

# --- runtime: slim Python, the venv, an unprivileged numeric user ---
FROM python:3.11.14-slim-bookworm AS runtime

LABEL org.opencontainers.image.title="tggod-session-service" \
      org.opencontainers.image.description="gRPC session service for TgGod (sessions in Redis, encrypted)" \
      org.opencontainers.image.licenses="MIT"

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH="/opt/venv/bin:$PATH"

RUN groupadd --system --gid 10001 tggod \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin tggod

COPY --from=builder /opt/venv /opt/venv

USER 10001:10001
# gRPC, then Prometheus metrics.
EXPOSE 50051 9451
ENTRYPOINT ["tggod-session-service"]
