#!/usr/bin/env bash
# runc for a Docker daemon whose own processes lack capabilities the kernel has: it drops, from the
# container's spec, every capability not in this process's bounding set, then runs runc.
#
# Why: Docker 20.10 gives a --privileged container every capability the kernel knows (kind runs
# every node --privileged). Where the daemon's bounding set lacks one -- on this machine every
# process lacks CAP_SYS_RESOURCE -- runc cannot raise it and fails:
#   "runc create failed: unable to start container process: unable to apply caps: operation not permitted"
# (and `docker exec --privileged` the same way). Newer runtimes (Podman, containerd's CRI) grant
# "all capabilities" as the caller's own set; this does that for Docker 20.10.
#
# Use it as the daemon's default runtime (a private daemon only; its daemon.json):
#   "runtimes": {"runc-bounded": {"path": "/path/to/hack/runc-bounded.sh"}},
#   "default-runtime": "runc-bounded"
# RUNC_BOUNDED_RUNC names the real runc (default: /usr/sbin/runc, Debian's). It edits the spec of
# `create`/`run` (--bundle DIR: DIR/config.json) and of `exec` (--process FILE), nothing else.
set -euo pipefail

runc=${RUNC_BOUNDED_RUNC:-/usr/sbin/runc}
spec='' previous=''
for arg in "$@"; do
  case "$previous" in
    --bundle|-b) spec=$arg/config.json ;;
    --process|-p) spec=$arg ;;
  esac
  case "$arg" in
    --bundle=*) spec=${arg#--bundle=}/config.json ;;
    --process=*) spec=${arg#--process=} ;;
  esac
  previous=$arg
done

if [ -n "$spec" ] && [ -f "$spec" ]; then
  # The shim's environment may have no PATH worth the name.
  python=$(command -v python3 || echo /usr/bin/python3)
  "$python" - "$spec" <<'PY'
import json
import sys

# Capability numbers (linux/capability.h) up to what the kernel has.
NAMES = ["CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
         "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
         "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
         "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
         "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
         "CHECKPOINT_RESTORE"]
with open("/proc/self/status") as status:
    bounding = int(next(line for line in status if line.startswith("CapBnd:")).split()[1], 16)
missing = {"CAP_" + name for number, name in enumerate(NAMES) if not bounding >> number & 1}

path = sys.argv[1]
with open(path) as f:
    spec = json.load(f)
process = spec.get("process", spec)  # config.json, or exec's process.json
capabilities = process.get("capabilities") or {}
changed = False
for kind, names in capabilities.items():
    kept = [name for name in names or [] if name not in missing]
    if kept != (names or []):
        capabilities[kind] = kept
        changed = True
if changed:
    with open(path, "w") as f:
        json.dump(spec, f)
PY
fi
exec "$runc" "$@"
