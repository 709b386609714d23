"""Fuzzing `restart-wrapper tar` with hostile input: random bytes, and valid archives (from GNU tar,
Python's tarfile and Go's archive/tar) mutated: flipped header bytes with and without a
recomputed checksum, truncations, huge and base-256 numbers, lying pax record lengths, GNU
long-name members with huge sizes, '..' names, symlink and hard-link escapes.

Every case runs in a fresh directory: the -C target beside a canary tree. Whatever the input,
tar must end normally with 0 or 2 (no signal, no sanitizer report, no hang) and nothing outside
the target may change (content, mode, owner, times, inode, link count of every canary path).

Deterministic: case i of a build is generated from random.Random(f"{SEED}-{build}-{i}"); a
failure names the seed and the case. TAR_FUZZ_CASES=N runs N static cases (and N // 6 with the
ASan build, N // 2 with each other architecture's, under qemu) instead of the defaults;
TAR_FUZZ_SEED changes the seed.

Safety of the host if the code under test is wrong: as root the static builds (this machine's and
the other architectures') run chrooted into the cases' directory; the ASan build (which needs the
system's libraries) runs as nobody.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from . import archives as A
from .archives import Dir, Fifo, File, Hardlink, Symlink
from .harness import ENV, FOREIGN, IS_ROOT, NOBODY, RELEASES, SANITIZER_REPORT

SEED = int(os.environ.get("TAR_FUZZ_SEED", "1127"))
STATIC_CASES = int(os.environ.get("TAR_FUZZ_CASES", "4000"))
ASAN_CASES = max(1, STATIC_CASES // 6)
# Each other architecture's build, under qemu-user: every case starts an emulator, about 4x the
# time of a native case here (200 cases in 4.4s against 800), so half the static build's cases.
EMULATED_CASES = max(1, STATIC_CASES // 2)
CASES = {"static": STATIC_CASES, "asan": ASAN_CASES, **{arch: EMULATED_CASES for arch in FOREIGN}}
CHROOT = shutil.which("chroot") or "/usr/sbin/chroot"
TIMEOUT = 20  # seconds for one case: a hang fails the test
FUZZ_ENV = {k: v for k, v in ENV.items() if k not in ("TAR_OPTIONS", "TAPE")} | {"LC_ALL": "C"}
COMMANDS = [
    lambda d: ["-C", d, "-x", "-f", "-"],
    lambda d: ["-xmf", "-", "-C", d],
    lambda d: ["--no-same-permissions", "--no-same-owner", "-xmf", "-", "-C", d],
    lambda d: ["-xpvf", "-", "-C", d],
    lambda d: ["xof", "-", "-C", d],
]


# --- generating cases ----------------------------------------------------------------------------

def small_tree() -> list:
    deep = "/".join(["d" * 60] * 4)
    return [
        Dir("a", 0o755, A.T1), File("a/f", b"data" * 300, 0o640, A.T1), Symlink("a/l", "f"), Hardlink("a/h", "a/f"),
        Fifo("a/p"), File("a/" + "L" * 120, b"long"), File("a/\u00e9t\u00e9", b"x", 0o4755), Dir(f"a/{deep}"),
        File(f"a/{deep}/x", b"y" * 700), Symlink("a/longlink", "t" * 150), File("a/empty"),
    ]


def valid_pool(gotar: Path) -> list[bytes]:
    tree = small_tree()
    pool = [A.python(A.fits(tree, f), f) for f in ("ustar", "gnu", "pax")]
    pool += [A.gnu(A.fits(tree, f), f) for f in ("v7", "ustar", "gnu", "pax")]
    pool += [A.go_headers(gotar, tree, f) for f in ("", "pax", "gnu")]
    pool += [A.go_tilt(gotar, tree, "a", "/app"), A.go_kubectl(gotar, tree, "a", "dst")]
    return [strip_end(p) for p in pool]


def strip_end(data: bytes) -> bytes:
    """The members without the end-of-archive zero blocks and padding."""
    end = len(data)
    while end >= A.BLOCK and data[end - A.BLOCK:end] == bytes(A.BLOCK):
        end -= A.BLOCK
    return data[:end]


INTERESTING_NUMBERS = [
    b"77777777777\0", b"7777777\0", b"\0" * 12, b" " * 12, b"-1\0", b"0x10\0", b"99999999999\0", b"1" * 12,
    A.base256(2 ** 63 - 1, 12), A.base256(-1, 12), A.base256(2 ** 40, 12), A.base256(-(2 ** 40), 12),
    A.base256(513, 12), A.base256(0, 12), b"\x80" + b"\xff" * 11, b"\xff" * 12, b"00000001000\0", b"00000000777\0",
]
FIELDS = {"mode": (100, 8), "uid": (108, 8), "gid": (116, 8), "size": (124, 12), "mtime": (136, 12)}
TYPEFLAGS = b"0123456789xgLKSDMVNA\0 "


def fix_checksum(block: bytearray) -> None:
    block[148:156] = b"%06o\0 " % A.checksum(bytes(block))


def escapes(out: str) -> list:
    """Archives that write into the canary directory `out` (its absolute path as the extracting
    process sees it, a sibling of the target) when extracted naively: makers of them."""
    return [
        lambda: A.python([File("../canary/new", b"x"), File("a/../../canary/file", b"x")], "gnu"),
        lambda: A.python([Symlink("s", out), File("s/file", b"pwned"), File("s/new", b"pwned")], "gnu"),
        lambda: A.python([Symlink("s", "../canary"), Dir("s/dir", 0o777), File("s/dir/inner", b"pwned")], "pax"),
        lambda: A.python([Symlink("r", "/"), File("r" + out + "/file", b"pwned")], "pax"),
        lambda: A.python([Symlink("up", ".."), File("up/canary/file", b"pwned"), Dir("up/canary", 0o777)], "gnu"),
        lambda: A.python([Dir("x"), Symlink("x/u", "../.."), Symlink("y", "x"), File("y/u/canary/file", b"pwned")], "gnu"),
        lambda: A.python([Hardlink("h", "../canary/file"), File("h", b"pwned")], "ustar"),
        lambda: A.python([Symlink("s", out), Hardlink("h2", "s/file")], "pax"),
        lambda: A.python([Symlink("s", out + "/file"), File("s", b"x", 0o777)], "pax"),
        lambda: A.python([Symlink("s", out + "/file"), Hardlink("h", "s"), File("h", b"pwned")], "gnu"),
        lambda: A.pax(A.pax_record("path", "../canary/pwned")) + A.member("ok", b"x") + A.END,
        lambda: A.pax(A.pax_record("linkpath", out + "/dir")) + A.header("l", typeflag=b"2") + A.member("l/inner", b"pwned")
        + A.END,
        lambda: A.gnu_long(b"L", b"../canary/pwned") + A.member("short", b"x") + A.END,
        lambda: A.gnu_long(b"K", (out + "/file").encode()) + A.header("h", typeflag=b"1") + A.member("h", b"pwned") + A.END,
        lambda: A.member(b"p", b"pwned", prefix=b"../canary") + A.END,
        lambda: A.python([File("pre/file", b"pwned"), File("pre/new", b"pwned")], "gnu"),
        lambda: A.python([Dir("prerel/dir", 0o777), File("prerel/dir/inner", b"pwned")], "pax"),
        lambda: A.python([Hardlink("h", "pre/file")], "ustar"),
    ]


def hostile_members(rng: random.Random, canary: str) -> list[bytes]:
    """Members (raw or through tarfile) that try to get out or to make the parser overreach."""
    out = canary  # the canary directory's absolute path, as the extracting process sees it
    choices = [
        lambda: strip_end(rng.choice(escapes(out))()),
        lambda: A.python([Hardlink("h", out + "/file"), Symlink("s", out), Hardlink("h2", "s/file")], "pax"),
        lambda: A.python([Symlink("s", out + "/file"), File("s", b"x", 0o777), Symlink("t", out + "/dir"),
                          Dir("t", 0o777, A.T1), Fifo("t", 0o777)], "pax"),
        lambda: A.python([File("/" + out.strip("/") + "/file", b"inside")], "ustar"),
        lambda: A.python([Symlink("s", "../canary/dir"), Hardlink("s/inner", "s/inner")], "gnu"),
        lambda: A.python([Dir("."), File("./f", b"x"), Symlink(".", out)], "gnu"),
        lambda: A.pax(A.pax_record("path", "x", length=rng.choice([0, 1, 5, 12, 13, 14, 99, 10 ** 6, 2 ** 63])))
                + A.member("y", b"x"),
        lambda: A.pax(b"99999999999999999999999 path=x\n") + A.member("y", b"x"),
        lambda: A.pax(b"-5 path=x\n" + b"10 nokey\n" + b"6 a=b" + b"abc path=x\n") + A.member("y", b"x"),
        lambda: A.pax(A.pax_record("size", rng.choice(["99999999999999999999", "-1", "1e9", "0", "513", ""])))
                + A.member("y", b"x" * 600),
        lambda: A.pax(A.pax_record("mtime", rng.choice(["-1.5", "1e10", "1.0000000000001", "9" * 30, ".", "1.",
                                                          "-0.000000001", "12345678901234567890.5"])))
                + A.member("y", b"x"),
        lambda: A.pax(A.pax_record("uid", rng.choice(["-1", "99999999999999999999", "4294967296", "x"]))
                      + A.pax_record("gid", "4294967295")) + A.member("y", b"x"),
        lambda: A.pax(A.pax_record("path", "g"), typeflag=b"g") + A.member("y", b"x"),
        lambda: A.pax(b"", size=rng.choice([2 ** 33, 2 ** 62, 10 ** 11])),
        lambda: A.gnu_long(b"L", b"n" * rng.choice([100, 101, 511, 512, 513, 5000, 70000])) + A.member("short", b"x"),
        lambda: A.gnu_long(b"L", b"x", size=rng.choice([2 ** 33, 2 ** 62, 8 ** 11 - 1, 10 ** 9])),
        lambda: A.gnu_long(b"L", b"a") + A.gnu_long(b"L", b"b") + A.gnu_long(b"K", b"c") + A.member("z", b"x"),
        lambda: A.header("big", numbers={"size": A.base256(rng.choice([2 ** 62, 2 ** 40, -1, -(2 ** 62)]), 12)},
                         magic="gnu") + b"x" * 512,
        lambda: A.header("neg", numbers={"mtime": A.base256(-(2 ** 40), 12), "uid": A.base256(-1, 8),
                                         "gid": A.base256(2 ** 56, 8)}, magic="gnu"),
        lambda: A.header("odd", numbers={"size": b"12 34\0", "mode": b"\x80\xff\xff\xff\xff\xff\xff\xff"}),
        lambda: A.header(b"q", prefix=b"/" + out.encode()) + A.header(b"..", prefix=b"a"),
        lambda: A.header(b"n" * 100, prefix=b"m" * 155) + A.header(b"", typeflag=b"5"),
        lambda: A.header("dev", typeflag=rng.choice([b"3", b"4"]), mode=0o666),
        lambda: A.header("sparse", typeflag=b"S", size=4096, magic="gnu"),
        lambda: A.header("hl", typeflag=b"1", linkname="does-not-exist") + A.header("hl2", typeflag=b"1", linkname="hl2"),
        lambda: A.header("v7dir/", typeflag=b"\0", magic="v7"),
        lambda: A.header("z", size=512, fix_checksum=False),
    ]
    return [rng.choice(choices)() for _ in range(rng.randint(1, 3))]


def mutate(rng: random.Random, data: bytes) -> bytes:
    block_count = max(1, len(data) // A.BLOCK)
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(6)
        if not buf:
            break
        if kind == 0:  # flip bytes anywhere
            for _ in range(rng.randint(1, 8)):
                buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
        elif kind in (1, 2):  # a header field changed, checksum recomputed so the parser believes it
            start = rng.randrange(block_count) * A.BLOCK
            block = bytearray(buf[start:start + A.BLOCK].ljust(A.BLOCK, b"\0"))
            if kind == 1:
                name, (offset, width) = rng.choice(list(FIELDS.items()))
                block[offset:offset + width] = rng.choice(INTERESTING_NUMBERS)[:width].ljust(width, b"\0")
            else:
                for _ in range(rng.randint(1, 4)):
                    position = rng.choice([156, rng.randrange(100), 257 + rng.randrange(8), rng.randrange(A.BLOCK)])
                    block[position] = rng.choice(TYPEFLAGS) if position == 156 else rng.randrange(256)
            if rng.random() < 0.85:
                fix_checksum(block)
            buf[start:start + A.BLOCK] = block
        elif kind == 3:  # truncated
            del buf[rng.randrange(len(buf) + 1):]
        elif kind == 4:  # a stretch of garbage or zeros
            start = rng.randrange(len(buf))
            length = rng.randint(1, 2048)
            buf[start:start + length] = bytes(length) if rng.random() < 0.5 else os.urandom(length)
        else:  # spliced with itself at another offset
            a, b = sorted(rng.randrange(len(buf) + 1) for _ in range(2))
            buf = buf[:a] + buf[b:] + buf[a:b]
    return bytes(buf)


def generate(rng: random.Random, pool: list[bytes], canary: str) -> bytes:
    kind = rng.randrange(10)
    if kind == 0:  # random bytes
        return bytes(rng.getrandbits(8) for _ in range(rng.choice([0, 1, 100, 511, 512, 1024, 3000])))
    if kind == 1:  # random headers with recomputed checksums
        out = b""
        for _ in range(rng.randint(1, 5)):
            block = bytearray(rng.getrandbits(8) for _ in range(A.BLOCK))
            if rng.random() < 0.7:
                block[257:265] = rng.choice([b"ustar\x0000", b"ustar  \x00"])
            fix_checksum(block)
            out += bytes(block) + bytes(rng.getrandbits(8) for _ in range(rng.choice([0, 512, 1024])))
        return out + (A.END if rng.random() < 0.5 else b"")
    members = []
    if kind <= 5:
        members.append(rng.choice(pool))
    if kind >= 4:
        members += hostile_members(rng, canary)
    if kind == 9:
        members.append(rng.choice(pool))
    rng.shuffle(members)
    data = b"".join(members) + (A.END if rng.random() < 0.8 else b"")
    if kind in (2, 3, 5, 6) or rng.random() < 0.3:
        data = mutate(rng, data)
    return data


# --- running cases -------------------------------------------------------------------------------

def make_case(case_dir: Path, seen: str, owner: int | None) -> None:
    """The case's directory: the target (holding symlinks out, as an image might), the canary
    directory beside it, and a file beside both. `seen`: case_dir as the extracting process sees it."""
    target, canary = case_dir / "target", case_dir / "canary"
    (canary / "dir").mkdir(parents=True)
    target.mkdir()
    (target / "pre").symlink_to(seen + "/canary")
    (target / "prerel").symlink_to("../canary")
    (canary / "file").write_text("canary\n")
    (canary / "dir" / "inner").write_text("inner\n")
    (canary / "link").symlink_to("file")
    (case_dir / "beside").write_text("beside\n")
    if owner is not None:  # the canary belongs to the extracting uid: an escape would succeed
        for p in (case_dir, target, canary, canary / "dir", canary / "file", canary / "dir" / "inner",
                  canary / "link", case_dir / "beside", target / "pre", target / "prerel"):
            os.chown(p, owner, owner, follow_symlinks=False)


def outside_of(case_dir: Path) -> dict:
    tree = A.snapshot(case_dir, skip=("target",))
    st = os.lstat(case_dir / "target")
    tree["target(identity)"] = (st.st_mode & 0o170000, st.st_ino)
    return tree


def force_rmtree(path: Path) -> None:
    """rmtree, first giving back the search and write permissions an archive took from directories."""
    try:
        shutil.rmtree(path)
        return
    except OSError:
        pass

    def open_up(directory: str) -> None:
        os.chmod(directory, 0o700)
        for entry in os.scandir(directory):
            if entry.is_dir(follow_symlinks=False):
                open_up(entry.path)

    open_up(str(path))
    shutil.rmtree(path)


class Runner:
    """Cases in fresh directories under one base: base/c/I/{target,canary,beside}."""

    def __init__(self, label: str, tmp_path: Path, prefix, chroot: bool, as_nobody: bool):
        self.label, self.tmp_path, self.chroot, self.as_nobody = label, tmp_path, chroot, as_nobody
        self.base = Path(tempfile.mkdtemp(prefix=f"restart-wrapper-fuzz-{label}-"))
        self.base.chmod(0o755)
        self.prefix = prefix(self.base)  # the command before tar's arguments
        self.kwargs = {"user": NOBODY, "group": NOBODY, "extra_groups": []} if as_nobody else {}
        self.codes: dict[int, int] = {}

    def close(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)

    def run(self, i: int, make) -> str | None:
        """Case i: make(rng, canary path, target path) -> (archive, tar arguments, env)."""
        rng = random.Random(f"{SEED}-{self.label}-{i}")
        case_dir = self.base / "c" / str(i)
        case_dir.mkdir(parents=True)
        seen = f"/c/{i}" if self.chroot else str(case_dir)  # paths as the extracting process sees them
        try:
            make_case(case_dir, seen, NOBODY if self.as_nobody else None)
            data, args, env = make(rng, seen + "/canary", seen + "/target")
            before = outside_of(case_dir)
            try:
                result = subprocess.run([*self.prefix, *args], input=data, capture_output=True, env=env,
                                        timeout=TIMEOUT, cwd="/", **self.kwargs)
            except subprocess.TimeoutExpired:
                return self.save(i, data, f"hung for more than {TIMEOUT}s")
            self.codes[result.returncode] = self.codes.get(result.returncode, 0) + 1
            err = result.stderr.decode(errors="replace")
            if result.returncode not in (0, 2):
                return self.save(i, data, f"exited {result.returncode} (negative: killed by that signal):\n{err[-3000:]}")
            if any(s in err for s in SANITIZER_REPORT):
                return self.save(i, data, f"sanitizer report:\n{err[-3000:]}")
            after = outside_of(case_dir)
            if after != before:
                changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
                return self.save(i, data, f"changed outside the target: {changed}\n{err[-2000:]}")
            return None
        finally:
            force_rmtree(case_dir)

    def save(self, i: int, data: bytes, problem: str) -> str:
        path = self.tmp_path / f"fuzz-{self.label}-{i}.tar"
        path.write_bytes(data)
        return f"seed {SEED}, {self.label} case {i} (archive saved as {path}): {problem}"


@pytest.mark.parametrize("build", [pytest.param(build, id=f"{build}-{cases}cases") for build, cases in CASES.items()])
def test_hostile_archives(build, multicall, gotar, tmp_path):
    cases = CASES[build]
    pool = valid_pool(gotar)
    chroot = IS_ROOT and build in RELEASES  # static builds: nothing but the binary in the chroot

    def prefix(base: Path) -> list[str]:
        shutil.copyfile(multicall[build] / "restart-wrapper", base / "restart-wrapper")
        (base / "restart-wrapper").chmod(0o755)
        # chroot(8) rather than a preexec_fn, which is unsafe with the worker threads
        return [CHROOT, str(base), "/restart-wrapper", "tar"] if chroot else [str(base / "restart-wrapper"), "tar"]

    def make(rng, canary, target):
        data = generate(rng, pool, canary)
        env = FUZZ_ENV | ({"RESTART_WRAPPER_NO_OPENAT2": "1"} if rng.random() < 0.3 else {})
        return data, rng.choice(COMMANDS)(target), env

    runner = Runner(build, tmp_path, prefix, chroot=chroot, as_nobody=IS_ROOT and build == "asan")
    started = time.monotonic()
    try:
        with ThreadPoolExecutor(max_workers=2) as workers:
            problems = [p for p in workers.map(lambda i: runner.run(i, make), range(cases)) if p]
    finally:
        runner.close()
    print(f"{build}: {cases} cases in {time.monotonic() - started:.1f}s, seed {SEED}, exit statuses {runner.codes}")
    assert not problems, f"{len(problems)} of {cases} cases failed; the first ones:\n" + "\n\n".join(problems[:5])
    # Both outcomes are common: the generator reaches past the first header as well as failing.
    assert runner.codes.get(0, 0) > cases // 20 and runner.codes.get(2, 0) > cases // 20, runner.codes


NAIVE = """
import os, sys, tarfile
d = sys.argv[sys.argv.index("-C") + 1]
with tarfile.open(fileobj=sys.stdin.buffer, mode="r|") as archive:
    for m in archive:
        p = os.path.join(d, m.name.lstrip("/"))
        try:
            os.makedirs(os.path.dirname(p), exist_ok=True)
            if m.issym():
                os.symlink(m.linkname, p)
            elif m.islnk():
                os.link(os.path.join(d, m.linkname), p)  # an absolute target taken as it is
            elif m.isdir():
                os.makedirs(p, exist_ok=True)
                os.chmod(p, m.mode)
            elif m.isfile():
                with open(p, "wb") as f:
                    f.write(archive.extractfile(m).read())
        except OSError:
            pass
"""


def test_the_canary_catches_a_naive_extractor(tmp_path):
    """The check can fail: an extractor that follows symlinks and '..' changes the canary with
    every one of the escape archives the fuzz draws from."""
    def prefix(base: Path) -> list[str]:
        script = base / "naive.py"
        script.write_text(NAIVE)
        script.chmod(0o644)
        return [sys.executable, str(script)]

    escape_count = len(escapes("/x"))
    # As the tests' own uid: every write of these archives stays inside the case's directory.
    runner = Runner("naive", tmp_path, prefix, chroot=False, as_nobody=False)
    try:
        results = [runner.run(i, lambda rng, canary, target, i=i: (escapes(canary)[i](), ["-C", target], FUZZ_ENV))
                   for i in range(escape_count)]
    finally:
        runner.close()
    undetected = [i for i, problem in enumerate(results) if problem is None or "changed outside" not in problem]
    assert not undetected, f"escape archives the canary did not catch: {undetected}\n{results}"
