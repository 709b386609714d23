"""Running another architecture's build of the wrapper on this machine: Debian's qemu-user-static,
started by the kernel through binfmt_misc, so that the binary is run exactly as the tests run the
native one (exec, chroot, another uid, PID namespaces, argv[0] through a link).

`ensure(arch)` makes ARCH's static binaries run here, and does only what is missing (so it is
idempotent). What it may change on the host, as root:

- mounts binfmt_misc at /proc/sys/fs/binfmt_misc when it is not mounted (`mount -t binfmt_misc
  binfmt_misc /proc/sys/fs/binfmt_misc`; it stays mounted);
- enables Debian's qemu-ARCH entry there when it is not enabled (`update-binfmts --enable
  qemu-aarch64`, from qemu-user-static and binfmt-support, which `make packages` installs): from
  then on until a reboot (or `update-binfmts --disable qemu-aarch64`) the kernel runs every arm64
  ELF executable on this machine through /usr/libexec/qemu-binfmt/aarch64-binfmt-P.

Debian registers that entry with the flags P (argv[0] is passed on as it was: the multi-call names
tar, rm and test are chosen by it) and F (the interpreter is opened when the entry is registered,
so the binary runs in a chroot that holds nothing else). Both are checked.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from functools import cache
from pathlib import Path

BINFMT = Path("/proc/sys/fs/binfmt_misc")
QEMU = {"arm64": "qemu-aarch64", "amd64": "qemu-x86_64"}  # Debian's binfmt entry (and binary) names
HOST_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
# What Debian's qemu-user-static is, for the reasons given where it cannot emulate something.
EMULATOR = "qemu-user (Debian bookworm's qemu-user-static 7.2)"


def emulated(arch: str) -> bool:
    return arch != HOST_ARCH


def entry(arch: str) -> dict[str, str]:
    """The binfmt_misc entry for ARCH: {"state": "enabled"|"disabled", "interpreter": ..., "flags": ...},
    or {} when there is none."""
    path = BINFMT / QEMU[arch]
    if not path.exists():
        return {}
    fields = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition(" ")
        if key in ("enabled", "disabled"):
            fields["state"] = key
        elif key in ("interpreter", "flags:"):
            fields[key.rstrip(":")] = value.strip()
    return fields


def _run(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited with {result.returncode}: {result.stderr.strip()}")


@cache
def ensure(arch: str) -> str | None:
    """None when ARCH's binaries run here (natively, or through qemu, set up now if need be);
    otherwise why not, saying "needs root" when that is the reason."""
    if not emulated(arch):
        return None
    if arch not in QEMU:
        return f"no emulator known for {arch}"
    is_root = os.geteuid() == 0
    if not (BINFMT / "register").exists():
        if not is_root:
            return f"mounting binfmt_misc (to run {arch} binaries under qemu) needs root"
        _run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT)])
    if entry(arch).get("state") != "enabled":
        if not is_root:
            return f"enabling qemu for {arch} in binfmt_misc needs root"
        if shutil.which("update-binfmts") is None or not Path("/usr/share/binfmts", QEMU[arch]).exists():
            return (f"missing qemu-user-static or binfmt-support (to run {arch} binaries): `make test` installs them "
                    "(make packages)")
        _run(["update-binfmts", "--enable", QEMU[arch]])
    found = entry(arch)
    if found.get("state") != "enabled" or not {"P", "F"} <= set(found.get("flags", "")):
        return f"binfmt_misc's {QEMU[arch]} entry is {found or 'missing'}: the tests need it enabled with flags P and F"
    return None
