# syntax=docker/dockerfile:1
# One image for every long-running part of the fraud detector; the command picks the role:
#
#   docker build -t fraud-detector .
#   docker run --rm -p 8000:8000 fraud-detector                          # web app + dashboard (default)
#   docker run --rm fraud-detector worker --deploy                       # Prefect worker (deploys prefect.yaml first)
#   docker run --rm -p 8100:8100 fraud-detector source --host 0.0.0.0   # transaction source (bundled sample)
#   docker run --rm fraud-detector bootstrap                             # schema, history, first champion
#
# compose.yaml wires them to PostgreSQL, a Prefect server and an MLflow server.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# uv, pinned to a minor release, from its official distroless image.
FROM ghcr.io/astral-sh/uv:0.9 AS uv

# ---------------------------------------------------------------------------------------------
# build: the locked dependencies, then the project, into /app/.venv
FROM ${PYTHON_IMAGE} AS build

COPY --from=uv /uv /usr/local/bin/uv

# Bytecode compiled at build time starts the containers faster; copy (not hard-link) from the
# cache mount; use the image's interpreter, never a downloaded one.
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=python3.11

WORKDIR /app

# Dependencies first: this layer changes only when the lock file does.
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,source=uv.lock,target=uv.lock \
    --mount=type=bind,source=pyproject.toml,target=pyproject.toml \
    uv sync --frozen --no-dev --no-install-project

# Then the code (.dockerignore keeps tests, local state and the virtualenv out).
COPY . /app
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev

# ---------------------------------------------------------------------------------------------
# runtime: the interpreter, the virtualenv and the code; no uv, no build tools, no root
FROM ${PYTHON_IMAGE} AS runtime

RUN groupadd --system --gid 10001 fraud \
    && useradd --system --uid 10001 --gid fraud --create-home --home-dir /home/fraud --shell /usr/sbin/nologin fraud

# Same path as in the build stage: the virtualenv's scripts and the editable install point at /app.
# The code stays root's (read-only for the service user); only /app/var is writable.
COPY --from=build /app /app

ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    FRAUD_VAR_DIR=/app/var \
    PREFECT_HOME=/app/var/prefect \
    NUMBA_CACHE_DIR=/app/var/numba

WORKDIR /app
RUN mkdir -p /app/var && chown 10001:10001 /app/var
VOLUME ["/app/var"]
USER 10001:10001

# 8000: web app and dashboard; 8100: transaction source.
EXPOSE 8000 8100

ENTRYPOINT ["fraud-detector"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
