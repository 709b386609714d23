# Two images from one file:
#   docker build --target wrapper -t restart-process/restart-wrapper:0.1.0 .   FROM scratch, the init container's
#   docker build --target webhook -t restart-process/webhook:0.1.0 .           the admission webhook server
# Multi-arch: docker buildx build --platform linux/amd64,linux/arm64 --target wrapper .
# (the wrapper's build stage runs on the build platform and cross-compiles for TARGETARCH, so no
# emulator is needed; the webhook's stages run on the target platform).
#
# Every stage starts from Debian: the toolchain and Python are Debian's packages, the same
# `make test` uses on the host. The bases are build arguments; without a registry,
# hack/build-base-images.sh builds debian:bookworm-slim from the Debian archive with mmdebstrap
# and imports it under that name.

ARG WRAPPER_BUILD_IMAGE=debian:bookworm-slim
ARG WEBHOOK_BASE_IMAGE=debian:bookworm-slim

# --- restart-wrapper: static, musl, stripped --------------------------------------------------
# On BUILDPLATFORM, whatever the target: a C cross-compiler is an apt package, while running the
# stage on the target platform would need QEMU registered in the builder (slow, and often absent
# on CI builders), and the binary is static, so nothing of the build stage's own architecture ends
# up in it. BUILDPLATFORM and TARGETARCH are BuildKit's (docker build's builder since Docker 23;
# DOCKER_BUILDKIT=1 with 20.10): the classic builder sets neither and cannot build this file.
FROM --platform=$BUILDPLATFORM ${WRAPPER_BUILD_IMAGE} AS wrapper-build
ARG TARGETARCH
# Debian's musl-tools (musl-gcc, with gcc from musl-dev) and make: the Makefile's own build. For
# another architecture, Debian's cross gcc and that architecture's musl-dev (multiarch), which the
# Makefile's build/linux-ARCH rule uses, as `make wrapper` does on the host.
# Versions are the suite's: pinning them would break with every point release.
# hadolint ignore=DL3008
RUN target=${TARGETARCH:-$(dpkg --print-architecture)} \
 && set -- make musl-tools \
 && if [ "$target" != "$(dpkg --print-architecture)" ]; then \
      case "$target" in amd64) triple=x86-64 ;; arm64) triple=aarch64 ;; \
        *) echo "restart-wrapper is built for amd64 and arm64, not $target" >&2; exit 1 ;; esac \
      && dpkg --add-architecture "$target" && set -- "$@" "gcc-$triple-linux-gnu" "musl-dev:$target"; \
    fi \
 && apt-get update \
 && apt-get install -y --no-install-recommends "$@" \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Makefile VERSION ./
COPY wrapper/ wrapper/
# -o packages: the Makefile's `packages` step installs the test suite's Debian packages; here
# the ones above are all the build needs. The binary is checked to be TARGETARCH's (its ELF
# machine), and run when that is the build platform's.
# The layout `restart-wrapper install` lays down, so that the image mounted as a volume at
# /restart-process gives the same paths: /restart-process/restart-wrapper and
# /restart-process/bin/{tar,rm,test}, links to ../restart-wrapper.
RUN target=${TARGETARCH:-$(dpkg --print-architecture)} \
 && make -o packages "build/linux-$target/restart-wrapper" \
 && machine=$(od -An -tu2 -j18 -N2 "build/linux-$target/restart-wrapper") \
 && case "$target:$((machine))" in amd64:62 | arm64:183) ;; \
      *) echo "build/linux-$target/restart-wrapper has ELF machine $machine" >&2; exit 1 ;; esac \
 && if [ "$target" = "$(dpkg --print-architecture)" ]; then "build/linux-$target/restart-wrapper" version; fi \
 && echo "built restart-wrapper for linux/$target" \
 && mkdir -p /image/bin \
 && install -m 0755 "build/linux-$target/restart-wrapper" /image/restart-wrapper \
 && ln -s ../restart-wrapper /image/bin/tar \
 && ln -s ../restart-wrapper /image/bin/rm \
 && ln -s ../restart-wrapper /image/bin/test

FROM scratch AS wrapper
COPY --from=wrapper-build /image/ /
USER 65532:65532
ENTRYPOINT ["/restart-wrapper"]
CMD ["version"]

# --- the webhook server ----------------------------------------------------------------------
# Debian's python3 (3.11 in bookworm) and a virtual environment holding the project's wheel and
# its dependencies; the final stage gets python3 and that venv, nothing else.
FROM ${WEBHOOK_BASE_IMAGE} AS webhook-build
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml VERSION README.md ./
COPY webhook/ webhook/
# The wheel first (as a release would ship it), then the venv from it, without pip and setuptools
# (nothing installs at run time). Byte-compiled here, with hashes not checked against the
# sources: the root filesystem is read-only at run time, and the sources never change in the image.
# Behind a TLS-intercepting proxy, pip needs its CA: pass the trust store as an optional secret
# (never in a layer): --secret id=ca-certificates,src=/etc/ssl/certs/ca-certificates.crt
RUN --mount=type=secret,id=ca-certificates \
    if [ -s /run/secrets/ca-certificates ]; then export PIP_CERT=/run/secrets/ca-certificates; fi \
 && python3 -m venv /opt/restart-process \
 && /opt/restart-process/bin/pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
 && /opt/restart-process/bin/pip install --no-cache-dir --no-compile /wheels/*.whl \
 && /opt/restart-process/bin/pip uninstall --yes --quiet pip setuptools \
 && /opt/restart-process/bin/python -m compileall -q -j 0 --invalidation-mode unchecked-hash /opt/restart-process/lib

FROM ${WEBHOOK_BASE_IMAGE} AS webhook
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=webhook-build /opt/restart-process /opt/restart-process
ENV PATH=/opt/restart-process/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
# A numeric non-root user: runAsNonRoot can verify it without a passwd entry.
USER 10001:10001
EXPOSE 8443
ENTRYPOINT ["restart-process", "serve"]
