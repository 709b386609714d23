# The two commands a newcomer types are `make run` and `make test`; everything else is a step of those.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
VERSION := $(shell cat VERSION)
BUILD := build

# The wrapper is copied into every wrapped container: static, small, warnings are errors.
# MUSL_CC is expanded lazily (=), so a musl-gcc that `packages` just installed is found.
WRAPPER_SRC := $(wildcard wrapper/*.c)
WRAPPER_HDR := $(wildcard wrapper/*.h)
CSTD := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wformat=2 -DRW_VERSION='"$(VERSION)"'
MUSL_CC = $(shell command -v musl-gcc 2>/dev/null)
WRAPPER_CC = $(if $(MUSL_CC),$(MUSL_CC),$(CC))
SMALL := -Os -static -s -ffunction-sections -fdata-sections -Wl,--gc-sections -fno-asynchronous-unwind-tables
# The architectures the wrapper image ships, each built into build/linux-ARCH/ (restart-wrapper and
# the chroot test's probe). This machine's is a copy of build/restart-wrapper (which the tests,
# benchmarks and scripts use); the others are cross-compiled by Debian's gcc-TRIPLE-linux-gnu
# against Debian's musl for that architecture (multiarch musl-dev:ARCH, whose TRIPLE-linux-musl-gcc
# runs the cross gcc with its specs): the same gcc 12 and musl 1.2.3 as musl-tools here.
# `make wrapper` builds this machine's and every architecture's; `make wrapper ARCH=arm64` only one.
WRAPPER_ARCHES := amd64 arm64
TRIPLE_amd64 := x86_64
TRIPLE_arm64 := aarch64
HOST_ARCH := $(or $(shell dpkg --print-architecture 2>/dev/null),$(patsubst x86_64,amd64,$(patsubst aarch64,arm64,$(shell uname -m))))
FOREIGN_ARCHES := $(filter-out $(HOST_ARCH),$(WRAPPER_ARCHES))
# ARCH only from the command line: an ARCH in the environment (kernel builds set one) is not ours.
WRAPPER_ARCH := $(if $(filter command line,$(origin ARCH)),$(ARCH))
arch_builds = $(foreach a,$1,$(BUILD)/linux-$a/restart-wrapper $(BUILD)/linux-$a/chroot-probe)
cross_cc = $(if $(TRIPLE_$1),$(TRIPLE_$1)-linux-musl-gcc,$(error unsupported ARCH=$1: one of $(WRAPPER_ARCHES)))
# arm64 needs two more to stay within the size budget: gcc there emits unwind tables for every
# function (.eh_frame, which nothing reads in C without exceptions), and the RELRO segment is padded
# to the 64 KB maximum page size in the file (static musl never mprotects RELRO: no loader does).
SMALL_arm64 := -fno-unwind-tables -Wl,-z,norelro

.PHONY: run test e2e wrapper wrapper-asan wrapper-image packages control-plane runtime tools tilt bench clean

run: $(VENV)/.installed
	$(BIN)/restart-process serve --host 127.0.0.1 --port 8443

# The unit, chart and API server suites in a random order (pytest-random-order: the modules, and
# the tests in each), from a fixed seed printed in pytest's header (`make test TEST_SEED=N` for
# another): no test may lean on another's leftovers. The wrapper, node, Docker and kind suites
# keep their order: their session fixtures are costly to set up twice.
TEST_SEED ?= 20
IN_ORDER := tests/wrapper tests/node tests/docker tests/e2e

test: packages $(VENV)/.installed wrapper wrapper-asan control-plane runtime tools tilt
	status=0; \
	$(BIN)/pytest --random-order-bucket=module --random-order-seed=$(TEST_SEED) $(addprefix --ignore=,$(IN_ORDER)) || status=$$?; \
	$(BIN)/pytest $(IN_ORDER) || status=$$?; \
	exit $$status

# The kind end-to-end test alone (make test runs it too): a private Docker Engine, kind on the
# node image hack/build-kind-node-image.sh assembles, the README's install commands, Tilt. Asked
# for explicitly, it fails rather than skips. On a machine with Docker and a registry:
#   make e2e RESTART_PROCESS_DOCKER_HOST=unix:///var/run/docker.sock [KIND_NODE_IMAGE=kindest/node:...]
e2e: packages $(VENV)/.installed wrapper control-plane runtime tools tilt
	RESTART_PROCESS_E2E=1 $(BIN)/pytest -m e2e tests/e2e

# kube-apiserver, kube-controller-manager, etcd and helm for the integration tests, kubelet,
# kube-scheduler and kubectl for the node tests, and kubeadm and kube-proxy for the kind node
# image, built once into ~/.cache from the Go module proxy (about 11 minutes on 2 busy cores the
# first time, in one go build). Binaries from envtest (KUBEBUILDER_ASSETS, TEST_ASSET_*) are used
# instead when those are set.
KUBERNETES_BINARIES := kube-apiserver kube-controller-manager etcd helm kubelet kube-scheduler kubectl kubeadm kube-proxy
control-plane:
	@if [ -n "$$KUBEBUILDER_ASSETS$$TEST_ASSET_KUBE_APISERVER" ]; then \
	  echo "control-plane: using binaries from KUBEBUILDER_ASSETS / TEST_ASSET_*"; \
	else hack/build-control-plane.sh $(KUBERNETES_BINARIES) >/dev/null; fi

# containerd 2, runc (with seccomp), crictl and the CNI plugins, from the Go module proxy: the node
# tests' default runtime and the kind node image's (about 3 minutes the first time).
runtime: packages
	@hack/build-runtime.sh >/dev/null

# crane (images without Docker), actionlint (the GitHub workflow) and kind, from the Go module proxy.
tools:
	@hack/build-tools.sh >/dev/null

# Tilt, which tests/node/test_tilt.py and benchmarks/live_update.py run (`tilt up`), built once
# from the Go module proxy (TEST_ASSET_TILT names a binary to use instead).
tilt:
	@hack/build-tilt.sh >/dev/null

# The init container's image without Docker: make wrapper-image IMAGE=registry.example/restart-wrapper:0.1.0
# (INSECURE=1 for a plain-HTTP registry). Same layout as the Dockerfile's `wrapper` target.
# An OCI index of linux/amd64 and linux/arm64 (build/linux-ARCH/restart-wrapper each).
wrapper-image: $(call arch_builds,$(WRAPPER_ARCHES))
	@test -n "$(IMAGE)" || { echo "usage: make wrapper-image IMAGE=REGISTRY/REPOSITORY:TAG [INSECURE=1]" >&2; exit 2; }
	hack/push-wrapper-image.sh "$(IMAGE)"

# The node tests' second runtime is Debian's: containerd 1.6, runc 1.1, the CNI plugins,
# busybox-static. runc 1.4 for containerd 2 links libseccomp (cgo, found with pkg-config). The
# Docker Engine the image and kind tests start privately is Debian's docker.io (checked as dockerd:
# another docker CLI may be on the PATH), and mmdebstrap builds the Debian base images.
# The other architectures' wrappers: Debian's cross gcc and musl-dev for that architecture, which
# needs it added to dpkg's (`dpkg --add-architecture`: apt then fetches its package lists too);
# qemu-user-static and binfmt-support run them (tests/wrapper/emulation.py registers qemu).
packages:
	@$(foreach a,$(FOREIGN_ARCHES),if [ ! -e /usr/lib/$(TRIPLE_$a)-linux-musl/libc.a ] && [ "$$(id -u)" = 0 ] \
	  && ! dpkg --print-foreign-architectures | grep -qx $a; then dpkg --add-architecture $a; fi;)
	@hack/ensure-packages.sh musl-gcc:musl-tools unshare:util-linux entr:entr shellcheck:shellcheck docker-registry:docker-registry \
	  containerd:containerd runc:runc /usr/lib/cni/bridge:containernetworking-plugins busybox:busybox-static ip:iproute2 \
	  /usr/include/seccomp.h:libseccomp-dev pkg-config:pkg-config dockerd:docker.io mmdebstrap:mmdebstrap \
	  $(foreach a,$(FOREIGN_ARCHES),$(TRIPLE_$a)-linux-gnu-gcc:gcc-$(subst _,-,$(TRIPLE_$a))-linux-gnu \
	    /usr/lib/$(TRIPLE_$a)-linux-musl/libc.a:musl-dev:$a qemu-$(TRIPLE_$a)-static:qemu-user-static) \
	  update-binfmts:binfmt-support

$(VENV)/.installed: pyproject.toml VERSION
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

wrapper: $(if $(WRAPPER_ARCH),$(call arch_builds,$(WRAPPER_ARCH)),$(BUILD)/restart-wrapper $(BUILD)/chroot-probe $(call arch_builds,$(WRAPPER_ARCHES)))

wrapper-asan: $(BUILD)/restart-wrapper-asan

$(BUILD)/restart-wrapper: $(WRAPPER_SRC) $(WRAPPER_HDR) VERSION | packages
	@mkdir -p $(BUILD)
	$(if $(MUSL_CC),,@echo "musl-gcc not found: falling back to $(CC) -static (a larger binary)")
	$(WRAPPER_CC) $(CSTD) $(SMALL) $(SMALL_$(HOST_ARCH)) -o $@ $(WRAPPER_SRC)

# This machine's architecture: the build above. (Explicit rules: they win over the patterns below.)
$(BUILD)/linux-$(HOST_ARCH)/restart-wrapper: $(BUILD)/restart-wrapper
	@mkdir -p $(@D)
	cp $< $@
$(BUILD)/linux-$(HOST_ARCH)/chroot-probe: $(BUILD)/chroot-probe
	@mkdir -p $(@D)
	cp $< $@

# Another architecture: cross-compiled, with no fallback (a glibc static build is no substitute).
$(BUILD)/linux-%/restart-wrapper: $(WRAPPER_SRC) $(WRAPPER_HDR) VERSION | packages
	@command -v $(call cross_cc,$*) >/dev/null || { echo "$(call cross_cc,$*) not found: install \
	gcc-$(subst _,-,$(TRIPLE_$*))-linux-gnu and musl-dev:$* (as root, make packages does)" >&2; exit 1; }
	@mkdir -p $(@D)
	$(call cross_cc,$*) $(CSTD) $(SMALL) $(SMALL_$*) -o $@ $(WRAPPER_SRC)
$(BUILD)/linux-%/chroot-probe: tests/wrapper/chroot_probe.c | packages
	@mkdir -p $(@D)
	$(call cross_cc,$*) $(CSTD) $(SMALL) $(SMALL_$*) -o $@ $<

# Sanitizers need the dynamic glibc runtime; the tests run this build through the same suite.
$(BUILD)/restart-wrapper-asan: $(WRAPPER_SRC) $(WRAPPER_HDR) VERSION
	@mkdir -p $(BUILD)
	$(CC) $(CSTD) -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all -o $@ $(WRAPPER_SRC)

# A static program with no libc dependency for the chroot test: proof the wrapper needs nothing else.
$(BUILD)/chroot-probe: tests/wrapper/chroot_probe.c | packages
	@mkdir -p $(BUILD)
	$(WRAPPER_CC) $(CSTD) $(SMALL) -o $@ $<

# Benchmarks import the test harnesses as the package tests.support, so they run as modules.
bench: packages $(VENV)/.installed wrapper control-plane runtime tools tilt
	@hack/ensure-packages.sh wrk:wrk
	$(BIN)/python -m benchmarks.wrapper_restart
	$(BIN)/python -m benchmarks.sync_tools --directory /dev/shm
	$(BIN)/python -m benchmarks.mutate_load
	$(BIN)/python -m benchmarks.apiserver_latency
	$(BIN)/python -m benchmarks.live_update
	$(BIN)/python -m benchmarks.kind_live_update

clean:
	rm -rf $(BUILD) $(VENV)
