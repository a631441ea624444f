# syntax=docker/dockerfile:1
# One image for the sealkit controller and the Vault bootstrap Job:
#   controller (default):  sealkit-controller [flags]
#   Vault bootstrap Job:   command: ["vault-bootstrap"], args: [...]
# Build: docker build -t ghcr.io/sealkit/sealkit:0.1.0 .
# The local stack builds this same file with buildah on a Debian base made from
# Debian packages: --build-arg PYTHON_IMAGE=localhost/sealkit/python-base:bookworm

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# Dependency wheels first: this layer is reused until pyproject.toml (or README.md,
# the package's long description) changes, so a source change rebuilds in seconds.
FROM ${PYTHON_IMAGE} AS deps
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
RUN pip wheel --wheel-dir /wheels ".[controller,vault]" && rm -f /wheels/sealkit-*.whl

FROM deps AS build
COPY sealkit/ sealkit/
COPY controller/ controller/
COPY vault_bootstrap/ vault_bootstrap/
RUN pip wheel --no-deps --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# The project's own wheel is copied (a few hundred KB): layer caches key a RUN on its text,
# not on what a bind mount holds, so this COPY is what makes a source change reinstall.
COPY --from=build /wheels/sealkit-*.whl /tmp/
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels "$(echo /tmp/sealkit-*.whl)[controller,vault]" \
    && rm -f /tmp/sealkit-*.whl \
    && groupadd --system --gid 1001 sealkit \
    && useradd --system --uid 1001 --gid 1001 --no-create-home --shell /usr/sbin/nologin sealkit
USER 1001:1001
WORKDIR /tmp
EXPOSE 8080 8081
# Exec form: the controller is PID 1 and installs its own SIGTERM handler (graceful shutdown,
# Lease release).
ENTRYPOINT ["sealkit-controller"]
