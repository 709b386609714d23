# syntax=docker/dockerfile:1
# Two images from one file:
#   docker build --target wrapper -t restart-process/restart-wrapper:0.1.0 .   FROM scratch, the init container's
#   docker build --target webhook -t restart-process/webhook:0.1.0 .           the admission webhook server
# Multi-arch: docker buildx build --platform linux/amd64,linux/arm64 --target wrapper .
# (the wrapper stage runs on the target platform, so its musl toolchain builds for TARGETARCH)

ARG ALPINE_IMAGE=alpine:3.20
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- restart-wrapper: static, musl, stripped --------------------------------------------------
FROM ${ALPINE_IMAGE} AS wrapper-build
ARG TARGETARCH
# Alpine's own gcc links against musl, so `cc -static` is the musl build the Makefile wants.
# hadolint ignore=DL3018
RUN apk add --no-cache bash gcc make musl-dev
WORKDIR /src
COPY Makefile VERSION ./
COPY hack/ensure-packages.sh hack/
COPY wrapper/ wrapper/
RUN make build/restart-wrapper \
 && ./build/restart-wrapper version \
 && echo "built restart-wrapper for ${TARGETARCH:-the build platform}"

FROM scratch AS wrapper
COPY --from=wrapper-build /src/build/restart-wrapper /restart-wrapper
USER 65532:65532
ENTRYPOINT ["/restart-wrapper"]
CMD ["version"]

# --- the webhook server ----------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS webhook-build
WORKDIR /src
COPY pyproject.toml VERSION README.md ./
COPY webhook/ webhook/
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM ${PYTHON_IMAGE} AS webhook
COPY --from=webhook-build /wheels /wheels
# Byte-compile at build time: the root filesystem is read-only at run time.
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels \
 && python -m compileall -q "$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
# A numeric non-root user: runAsNonRoot can verify it without a passwd entry.
USER 10001:10001
EXPOSE 8443
ENTRYPOINT ["restart-process", "serve"]
