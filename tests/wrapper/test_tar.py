"""`restart-wrapper tar`: the extraction Tilt's live_update and `kubectl cp` run in the container.

Behaviour is checked against GNU tar 1.34, the oracle: each case extracts the same archive with
/usr/bin/tar and with our build, in the same setting (uid, umask, what is already there), and the
two trees must agree file by file: type, content, mode, owner, mtime to the nanosecond, symlink
targets, hard links. What GNU tar does not promise (no write outside the -C directory, numeric
owners) is checked against our builds alone.

Where the two differ on purpose the oracle is left out: GNU tar quotes non-ASCII names in -v output, applies pax global headers, sets a
directory's mtime early when a later member is written into it through a symlink, and stops
reading stdin after the end marker (its writer gets EPIPE).

TAR_UNDER_TEST=/usr/bin/tar points every case at another implementation, to check the tests
themselves: GNU tar passes all but the ours-only cases (drained stdin, numeric owners, global pax
headers, pre-existing symlinks out of the directory, the openat2/fallback resolver cases).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from . import archives as A
from .archives import Dir, Fifo, File, Hardlink, Symlink
from tests.support.processes import read_rest
from .harness import BUILDS, ENV, IS_ROOT, NO_OTHER_TOOLS, NOBODY, RELEASES, SANITIZER_REPORT, tool_argv, tool_variants

GNU_TAR = A.GNU_TAR
UNDER_TEST = os.environ.get("TAR_UNDER_TEST")
# Tar reads its defaults from these; the messages compared are the C locale's.
TAR_ENV = {k: v for k, v in NO_OTHER_TOOLS.items() if k not in ("TAR_OPTIONS", "TAPE", "POSIXLY_CORRECT", "LANGUAGE")}
TAR_ENV.update(LC_ALL="C", LANG="C")
FALLBACK = {"RESTART_WRAPPER_NO_OPENAT2": "1"}
# Why the openat2 resolver's cases are not run under qemu-user, and what checks them instead.
OPENAT2 = ("qemu 7.2 has no openat2 (syscall 437 answers ENOSYS), so the wrapper resolves with its fallback, which "
           "refuses every symbolic link. Instead: the fallback's cases here, test_emulation.py::"
           "test_the_emulated_build_tries_openat2_then_falls_back, and the native builds for openat2 itself")

pytestmark = pytest.mark.skipif(not Path(GNU_TAR).exists(), reason="GNU tar (the oracle) is not at /usr/bin/tar")


# --- running tar ---------------------------------------------------------------------------------

@pytest.fixture(params=tool_variants("tar"))
def tar(request, multicall) -> list[str]:
    """Our tar, as `restart-wrapper tar` and through a symlink named tar (the multi-call name)."""
    return [UNDER_TEST] if UNDER_TEST else tool_argv(multicall, request.param, "tar")


@pytest.fixture(params=list(BUILDS))
def ours(request, multicall) -> list[str]:
    """Our build only: for what the contract promises beyond GNU tar."""
    return [UNDER_TEST] if UNDER_TEST else tool_argv(multicall, request.param, "tar")


@pytest.fixture(params=["openat2", "fallback"])
def resolver(request) -> dict[str, str]:
    """The environment choosing the path resolver: openat2, or the one for kernels without it."""
    return FALLBACK if request.param == "fallback" else {}


def user_kwargs(user: str | None) -> dict:
    """How to run as `user`: "root", "nobody" (any non-root uid), or None (whoever runs the tests)."""
    if user is None:
        return {}
    if user == "root":
        if not IS_ROOT:
            pytest.skip("extracting as root needs root (CI runs the suite as root)")
        return {}
    # Not root: the tests' own uid is the non-root user.
    return {"user": NOBODY, "group": NOBODY, "extra_groups": []} if IS_ROOT else {}


def run(argv: list[str], args: list[str], stdin: bytes = b"", *, user: str | None = None, umask: int = 0o022,
        env: dict | None = None, timeout: float = 60, **kwargs) -> subprocess.CompletedProcess:
    if argv[0] == GNU_TAR:  # GNU tar names itself by argv[0]: "tar: ..." as when run from PATH
        kwargs["executable"], argv = GNU_TAR, ["tar", *argv[1:]]
    result = subprocess.run([*argv, *args], input=stdin, capture_output=True, env={**TAR_ENV, **(env or {})},
                            umask=umask, timeout=timeout, cwd="/", **user_kwargs(user), **kwargs)
    result.err = result.stderr.decode(errors="replace")
    result.out = result.stdout.decode(errors="replace")
    assert not any(s in result.err for s in SANITIZER_REPORT), result.err
    return result


def owned_by(path: Path, user: str) -> None:
    """Make path (and what is under it) belong to the user that extracts."""
    if user == "nobody" and IS_ROOT:
        for p in [path, *path.rglob("*")]:
            os.chown(p, NOBODY, NOBODY, follow_symlinks=False)


def lines(text: str) -> list[str]:
    return text.splitlines()


# --- the oracle --------------------------------------------------------------------------------

class Outcome:
    def __init__(self, result, tree, started):
        self.result, self.tree, self.started = result, tree, started


def extract(argv, archive: bytes, base: Path, args, *, user=None, umask=0o022, setup=None, env=None) -> Outcome:
    """Extract into a fresh base/target (set up by setup(target)) and snapshot it."""
    base.mkdir(mode=0o755, parents=True)
    target = base / "target"
    target.mkdir(mode=0o755)
    if setup:
        setup(target)
    owned_by(target, user)
    started = time.time_ns()
    result = run(argv, args(target), archive, user=user, umask=umask, env=env)
    return Outcome(result, A.snapshot(target), started)


def against_gnu(tar, archive: bytes, base: Path, args, **kwargs) -> tuple[Outcome, Outcome]:
    """(GNU's outcome, ours) for the same archive, command and setting."""
    return extract([GNU_TAR], archive, base / "gnu", args, **kwargs), extract(tar, archive, base / "ours", args, **kwargs)


def assert_same(gnu: Outcome, got: Outcome, what: str = "") -> None:
    problems = A.differences(gnu.tree, got.tree, min(gnu.started, got.started))
    assert got.result.returncode == gnu.result.returncode and not problems, (
        f"{what}: ours exited {got.result.returncode} (GNU {gnu.result.returncode}); tree differs from GNU tar's:\n  "
        + "\n  ".join(problems[:40]) + f"\nours stderr:\n{got.result.err[-3000:]}\nGNU stderr:\n{gnu.result.err[-3000:]}")


# Every command line the two clients run, and the other spellings of the same options.
COMMANDS = {
    "tilt": lambda d: ["-C", str(d), "-x", "-f", "-"],
    "kubectl": lambda d: ["-xmf", "-", "-C", str(d)],
    "kubectl-no-preserve": lambda d: ["--no-same-permissions", "--no-same-owner", "-xmf", "-", "-C", str(d)],
    "skaffold": lambda d: ["xmf", "-", "-C", str(d), "--no-same-owner"],  # Skaffold's sync, to the word
    "old-style": lambda d: ["xf", "-", "-C", str(d)],
    "old-style-C": lambda d: ["xCf", str(d), "-"],
    "bundled-C": lambda d: ["-xC", str(d), "-f-"],
    "long": lambda d: ["--extract", "--file", "-", f"--directory={d}", "--touch", "--no-same-owner"],
    "same-owner": lambda d: ["-x", "--same-owner", "--file=-", "-C", str(d)],
    "attached": lambda d: [f"-C{d}", "-xpof-"],
    "verbose-p": lambda d: ["-xvpf", "-", "--directory", str(d), "--same-permissions"],
    "no-same-owner": lambda d: ["-x", "-o", "-f", "-", "-C", str(d)],
}

_archives: dict[str, bytes] = {}


def archive(name: str, gotar: Path) -> bytes:
    """The rich tree (every type, long and non-ASCII names, modes, a fractional mtime) by one writer."""
    if name not in _archives:
        writer, _, fmt = name.partition("-")
        if writer == "gnu":
            _archives[name] = A.gnu(A.fits(A.rich(), fmt), fmt)
        elif writer == "python":
            _archives[name] = A.python(A.fits(A.rich(), fmt), fmt)
        elif name == "go-tilt":
            _archives[name] = A.go_tilt(gotar, A.rich())
        elif name == "go-kubectl":
            _archives[name] = A.go_kubectl(gotar, A.rich())
        elif writer == "go":
            _archives[name] = A.go_headers(gotar, A.rich(), fmt)
    return _archives[name]


ARCHIVES = ["gnu-v7", "gnu-ustar", "gnu-gnu", "gnu-pax", "python-ustar", "python-gnu", "python-pax",
            "go-tilt", "go-kubectl", "go-pax", "go-gnu"]
MATRIX = ([(a, "tilt") for a in ARCHIVES]
          + [(a, c) for c in ("kubectl", "kubectl-no-preserve", "skaffold") for a in ("go-kubectl", "gnu-pax")]
          + [(a, c) for c in ("old-style", "old-style-C", "bundled-C", "long", "attached", "verbose-p", "no-same-owner",
                              "same-owner")
             for a in ("gnu-pax",)])


@pytest.mark.parametrize("archive_name, command, user", [
    (a, c, u) for a, c in MATRIX for u in ("root", "nobody")
    if not (c == "same-owner" and u == "nobody")])  # --same-owner is for root: every chown fails otherwise
def test_extracts_like_gnu_tar(tar, gotar, world_tmp, archive_name, command, user):
    data = archive(archive_name, gotar)
    gnu, got = against_gnu(tar, data, world_tmp, COMMANDS[command], user=user,
                           umask=0o022 if user == "root" else 0o027)
    assert gnu.result.returncode == 0, gnu.result.err  # the oracle itself is happy with the archive
    assert len(gnu.tree) > 10
    assert_same(gnu, got, f"{archive_name} {command} as {user}")
    if command == "verbose-p":
        # GNU tar quotes non-ASCII bytes in the C locale (\\303\\251); the contract does not say.
        ascii_only = lambda out: sorted(l for l in lines(out) if "\\" not in l and l.isascii())
        assert len(lines(got.result.out)) == len(lines(gnu.result.out))
        assert ascii_only(got.result.out) == ascii_only(gnu.result.out)


def test_the_comparison_catches_a_missing_mtime_restore(world_tmp, gotar):
    """The oracle comparison can fail: GNU tar with -m (no mtime restore) against GNU tar without."""
    data = archive("gnu-pax", gotar)
    gnu = extract([GNU_TAR], data, world_tmp / "a", COMMANDS["tilt"])
    touched = extract([GNU_TAR], data, world_tmp / "b", lambda d: [*COMMANDS["tilt"](d), "-m"])
    problems = A.differences(gnu.tree, touched.tree, gnu.started)
    assert any("app/main.py: mtime_ns" in p for p in problems), problems
    gnu_again = extract([GNU_TAR], data, world_tmp / "c", COMMANDS["tilt"])
    assert A.differences(gnu.tree, gnu_again.tree, gnu.started) == []


@pytest.mark.parametrize("user", ["root", "nobody"])
@pytest.mark.parametrize("umask", [0o000, 0o077])
def test_umask_like_gnu_tar(tar, gotar, world_tmp, umask, user):
    # As root the archive's modes win; otherwise mode & ~umask. Directories tar makes on its own
    # (the deep path's parents) take the umask either way.
    gnu, got = against_gnu(tar, archive("gnu-pax", gotar), world_tmp, COMMANDS["tilt"], user=user, umask=umask)
    assert_same(gnu, got, f"umask {umask:o} as {user}")


@pytest.mark.parametrize("user", ["root", "nobody"])
def test_mtime_nanoseconds_from_pax(tar, gotar, world_tmp, user):
    entries = [Dir("d", 0o755, A.T1), File("d/f", b"x", 0o644, A.T1 + 1), Symlink("d/l", "f", A.T1 + 2),
               Fifo("d/p", 0o600, A.T1 + 3)]
    for i, data in enumerate((A.python(entries, "pax"), A.go_headers(gotar, entries, "pax"), A.gnu(entries, "pax"))):
        gnu, got = against_gnu(tar, data, world_tmp / str(i), COMMANDS["tilt"], user=user)
        assert gnu.tree["d/f"]["mtime_ns"] == A.T1 + 1
        assert_same(gnu, got)


@pytest.mark.parametrize("user", ["root", "nobody"])
@pytest.mark.parametrize("fmt", ["gnu", "pax"])
def test_big_and_negative_numbers_like_gnu_tar(tar, gotar, world_tmp, fmt, user):
    """GNU base-256 (or pax records) for uids and gids over 2097151 and times before 1970 or
    after 2242 (8**11 seconds)."""
    entries = [Dir("d", 0o755, -86400 * 365 * A.NS), File("d/old", b"1", 0o644, -86405 * A.NS),
               File("d/future", b"2", 0o600, 8 ** 11 * A.NS + 7 * A.NS),
               File("d/ids", b"3", 0o640, uid=3000000, gid=4000000)]
    owner = 3000000 if user == "root" else NOBODY if IS_ROOT else os.getuid()
    for i, data in enumerate((A.python(entries, fmt), A.go_headers(gotar, entries, fmt))):
        gnu, got = against_gnu(tar, data, world_tmp / str(i), COMMANDS["tilt"], user=user)
        assert gnu.result.returncode == 0, gnu.result.err
        assert gnu.tree["d/old"]["mtime_ns"] == -86405 * A.NS and gnu.tree["d/ids"]["uid"] == owner
        assert_same(gnu, got, f"{fmt} archive {i} as {user}")


def test_pax_records_override_the_header_like_gnu_tar(tar, world_tmp):
    """path, linkpath, size, mtime, uid, gid from a pax 'x' header win over the ustar fields."""
    long = "p/" + "n" * 200 + "/" + "m" * 120
    records = (A.pax_record("path", long) + A.pax_record("size", "5") + A.pax_record("mtime", "1500000000.5")
               + A.pax_record("uid", "3000001") + A.pax_record("gid", "3000002"))
    data = (A.pax(A.pax_record("path", "p/" + "n" * 200)) + A.header("ignored-dir/", typeflag=b"5", mode=0o750)
            + A.pax(records) + A.header("ignored-name", size=0, mode=0o640, uid=1, gid=2) + A.pad(b"hello")
            + A.pax(A.pax_record("linkpath", "t" * 300) + A.pax_record("path", "p/link"))
            + A.header("x", typeflag=b"2") + A.END)
    for user in (["root", "nobody"] if IS_ROOT else [None]):
        gnu, got = against_gnu(tar, data, world_tmp / str(user), COMMANDS["tilt"], user=user)
        assert gnu.result.returncode == 0, gnu.result.err
        assert gnu.tree[long]["content"] == b"hello"
        assert gnu.tree[long]["mtime_ns"] == 1500000000 * A.NS + A.NS // 2
        assert_same(gnu, got, str(user))


def _signed_checksum(name: bytes) -> bytes:
    """A header whose checksum sums signed bytes, as some old tars did (GNU tar accepts both)."""
    block = bytearray(A.header(name))
    signed = sum(x - 256 if x > 127 else x for x in block[:148] + block[156:]) + 8 * 32
    block[148:156] = b"%06o\0 " % signed
    return bytes(block)


def _checksum_spelled(spelling: bytes) -> bytes:
    block = bytearray(A.header("c", size=2))
    block[148:156] = spelling % A.checksum(bytes(block))
    return bytes(block) + A.pad(b"hi")


EDGES = {
    "dir-twice": lambda g: A.python([Dir("d", 0o700, A.T0), File("d/x", b"1"), Dir("d", 0o750, A.T1)], "pax"),
    "file-link-then-file-again": lambda g: A.python([File("a", b"old"), Hardlink("b", "a"), File("a", b"new")], "gnu"),
    "hard-link-to-a-directory": lambda g: A.python([Dir("d"), Hardlink("h", "d"), File("ok", b"1")], "gnu"),
    "hard-link-to-itself": lambda g: A.python([Hardlink("h", "h")], "gnu"),
    "hard-link-to-nothing": lambda g: A.python([Hardlink("h", "nope"), File("ok", b"1")], "gnu"),
    "symlink-over-an-empty-dir": lambda g: A.python([Dir("x"), Symlink("x", "y")], "gnu"),
    "symlink-over-a-full-dir": lambda g: A.python([Dir("x"), File("x/f", b""), Symlink("x", "y")], "gnu"),
    "file-over-a-dir": lambda g: A.python([Dir("x"), File("x", b"f")], "gnu"),
    "double-slashes-and-dots": lambda g: A.python([File("a//b", b"1"), File("./c/./d", b"2"), Dir("e//")], "gnu"),
    "empty-name": lambda g: A.member("", b"x") + A.member("ok", b"1") + A.END,
    "symlink-target-over-4096": lambda g: A.python([Symlink("s", "x" * 5000), File("ok", b"1")], "pax"),
    "name-of-exactly-100": lambda g: A.member("n" * 100, b"1") + A.END,
    "prefix-of-exactly-155": lambda g: A.member("n" * 100, b"1", prefix=b"p" * 155) + A.END,
    "signed-checksum": lambda g: _signed_checksum("\u00e9t\u00e9".encode()) + A.END,
    "checksum-7-digits": lambda g: _checksum_spelled(b"%07o\0") + A.END,
    "checksum-leading-space": lambda g: _checksum_spelled(b" %05o\0 ") + A.END,
    "checksum-without-nul": lambda g: _checksum_spelled(b"%07o ") + A.END,
    "size-space-padded": lambda g: A.header("s", numbers={"size": b"          2 "}) + A.pad(b"hi") + A.END,
    "size-without-nul": lambda g: A.header("s", numbers={"size": b"000000000002"}) + A.pad(b"hi") + A.END,
    "mode-with-spaces": lambda g: A.header("m", numbers={"mode": b"   644 \0"}) + A.END,
    "only-the-end-marker": lambda g: A.END,
    "a-lone-zero-block": lambda g: A.member("a", b"1") + bytes(512),
    "pax-header-then-eof": lambda g: A.pax(A.pax_record("path", "x")),
    "long-name-then-eof": lambda g: A.gnu_long(b"L", b"x" * 200),
    "long-name-of-5000": lambda g: A.gnu_long(b"L", b"x" * 5000) + A.member("y", b"1") + A.END,
    "long-name-over-path-max": lambda g: A.gnu_long(b"L", "/".join(["c" * 200] * 30).encode()) + A.member("y", b"1")
                                        + A.END,
    "contiguous-file-type-7": lambda g: A.member("contig", b"hi", typeflag=b"7") + A.END,
    "unknown-type-Z": lambda g: A.member("vendor", b"hi", typeflag=b"Z") + A.END,
    "v7-regular-file": lambda g: A.member("v7file", b"hi", typeflag=b"\0", magic="v7") + A.END,
    "v7-directory-by-its-slash": lambda g: A.member("v7dir/", b"", typeflag=b"\0", magic="v7")
                                          + A.member("v7dir/f", b"x", magic="v7") + A.END,
    "symlink-loop": lambda g: A.python([Symlink("l", "l"), File("l/x", b"1"), Symlink("a", "b"), Symlink("b", "a"),
                                        File("a/y", b"2"), File("ok", b"3")], "gnu"),
    "dir-with-data": lambda g: A.member("d/", b"x" * 600, typeflag=b"5") + A.member("f", b"1") + A.END,
    "symlink-with-data": lambda g: A.member("s", b"x" * 600, typeflag=b"2", linkname="t") + A.member("f", b"1") + A.END,
    "hard-link-with-data": lambda g: (A.member("a", b"1") + A.member("h", b"x" * 600, typeflag=b"1", linkname="a")
                                      + A.member("f", b"1") + A.END),
    "fifo-with-data": lambda g: A.member("p", b"x" * 600, typeflag=b"6") + A.member("f", b"1") + A.END,
    "dot-member-sets-the-directory": lambda g: A.go_tilt(g, [Dir("app", 0o750, A.T0), File("app/a", b"1"),
                                                            Dir("app/s", 0o700, A.T1)], "app", "/"),
}


@pytest.mark.parametrize("case", list(EDGES))
@pytest.mark.emulator_limit(
    "qemu 7.2 has no openat2 (syscall 437 answers ENOSYS), and the fallback resolver walks one component at a time, "
    "so it makes the 6,000-byte path that openat2 (and GNU tar) refuse with ENAMETOOLONG -- the same happens natively "
    "with RESTART_WRAPPER_NO_OPENAT2=1. Instead: the native builds", when={"case": "long-name-over-path-max"})
def test_edge_archives_like_gnu_tar(tar, gotar, world_tmp, case):
    gnu, got = against_gnu(tar, EDGES[case](gotar), world_tmp, COMMANDS["tilt"])
    assert_same(gnu, got, case)


def test_extracting_twice_like_gnu_tar(tar, gotar, world_tmp):
    """Live updates sync the same paths again and again: a second extraction over the first."""
    data = archive("gnu-pax", gotar)
    setup = lambda target: run([GNU_TAR], COMMANDS["tilt"](target), data)
    gnu, got = against_gnu(tar, data, world_tmp, COMMANDS["tilt"], setup=setup)
    assert_same(gnu, got)


def test_read_only_places_as_non_root_like_gnu_tar(tar, world_tmp):
    """An existing read-only directory refuses new members; a read-only file is still replaced."""
    def setup(target):
        (target / "ro-dir").mkdir()
        (target / "ro-file").write_text("old")
        (target / "ro-file").chmod(0o444)
        owned_by(target, "nobody")
        (target / "ro-dir").chmod(0o555)

    data = A.python([File("ro-dir/new", b"x"), File("ro-file", b"new", 0o644), File("ok", b"1")], "gnu")
    gnu, got = against_gnu(tar, data, world_tmp, COMMANDS["tilt"], setup=setup, user="nobody")
    assert_same(gnu, got)
    assert got.result.returncode == 2 and got.tree["ro-file"]["content"] == b"new"


def test_replacing_a_file_makes_a_new_inode(tar, world_tmp):
    """The old inode is left alone (a hard link to it keeps the old content), like GNU tar's unlink."""
    def setup(target):
        (target / "app").mkdir()
        (target / "app" / "main.py").write_text("old\n")
        os.link(target / "app" / "main.py", target / "keep")

    data = A.python([File("app/main.py", b"new\n", 0o644)], "ustar")
    gnu, got = against_gnu(tar, data, world_tmp, COMMANDS["tilt"], setup=setup)
    assert_same(gnu, got)
    assert got.tree["app/main.py"]["content"] == b"new\n" and got.tree["keep"]["content"] == b"old\n"
    assert got.tree["app/main.py"]["ino"] != got.tree["keep"]["ino"]


def test_replacing_a_running_executable(tar, world_tmp):
    """Rewriting a program that is running fails with ETXTBSY; replacing it does not."""
    sleep = Path(shutil.which("sleep")).resolve().read_bytes()
    true = Path(shutil.which("true")).resolve().read_bytes()
    for label, argv in (("gnu", [GNU_TAR]), ("ours", tar)):
        target = world_tmp / label
        target.mkdir()
        first = run(argv, COMMANDS["tilt"](target), A.python([Dir("app"), File("app/prog", sleep, 0o755)], "gnu"))
        assert first.returncode == 0, first.err
        running = subprocess.Popen([str(target / "app" / "prog"), "30"])
        try:
            time.sleep(0.05)
            second = run(argv, COMMANDS["tilt"](target), A.python([Dir("app"), File("app/prog", true, 0o755)], "gnu"))
            assert second.returncode == 0, f"{label}: {second.err}"
            assert (target / "app" / "prog").read_bytes() == true, label
            assert running.poll() is None, label  # the running program is untouched
        finally:
            running.kill()
            running.wait()


def test_extracting_over_an_existing_directory_keeps_it(tar, world_tmp):
    def setup(target):
        (target / "app").mkdir(mode=0o700)
        (target / "app" / "keep").write_text("keep\n")
        (target / "app" / "main.py").write_text("old\n")

    data = A.python([Dir("app", 0o755, A.T0), File("app/main.py", b"new\n")], "pax")
    gnu, got = against_gnu(tar, data, world_tmp, COMMANDS["tilt"], setup=setup)
    assert_same(gnu, got)
    assert got.tree["app/keep"]["content"] == b"keep\n" and got.tree["app"]["mode"] == 0o755


@pytest.mark.parametrize("case", ["dir-over-file", "file-under-a-file", "file-over-a-full-dir", "symlink-over-file",
                                  "file-over-symlink", "dir-over-dangling-symlink", "dir-over-symlink-to-a-dir"])
def test_a_different_type_already_there(tar, world_tmp, case):
    setups = {
        "dir-over-file": (lambda t: (t / "app").write_text("f"), [Dir("app"), File("app/x", b"1")]),
        "file-under-a-file": (lambda t: (t / "app").write_text("f"), [File("app/x", b"1"), File("ok", b"1")]),
        "file-over-a-full-dir": (lambda t: ((t / "app").mkdir(), (t / "app" / "k").write_text("k")),
                                 [File("app", b"1"), File("ok", b"1")]),
        "symlink-over-file": (lambda t: (t / "app").write_text("f"), [Symlink("app", "elsewhere")]),
        "file-over-symlink": (lambda t: (t / "app").symlink_to("elsewhere"), [File("app", b"1")]),
        "dir-over-dangling-symlink": (lambda t: (t / "app").symlink_to("elsewhere"), [Dir("app"), File("app/x", b"1")]),
        # An image's /app -> /srv/app: the sync's root member "app" keeps the link, files go through it.
        "dir-over-symlink-to-a-dir": (lambda t: ((t / "srv").mkdir(), (t / "app").symlink_to("srv")),
                                      [Dir("app", 0o755, A.T0), File("app/x", b"1")]),
    }
    setup, entries = setups[case]
    gnu, got = against_gnu(tar, A.python(entries, "gnu"), world_tmp, COMMANDS["tilt"], setup=setup)
    assert_same(gnu, got, case)


@pytest.mark.emulator_limit(OPENAT2)
def test_in_tree_relative_symlinks_are_followed_like_gnu_tar(tar, world_tmp):
    """A symlink created earlier in the archive, relative and without '..', is followed by GNU tar too."""
    # No member for real itself: GNU tar sets a directory's mtime as soon as a member outside it
    # comes, before inner/y changes it again; the contract applies it at the end. Not compared.
    data = A.python([File("real/x", b"x"), Symlink("inner", "real"), File("inner/y", b"y"), Symlink("real/self", "y")],
                    "gnu")
    gnu, got = against_gnu(tar, data, world_tmp, COMMANDS["tilt"])
    assert gnu.tree["real/y"]["content"] == b"y"
    assert_same(gnu, got)


def test_archive_read_from_a_file(tar, gotar, world_tmp):
    path = world_tmp / "archive.tar"
    path.write_bytes(archive("go-tilt", gotar))
    path.chmod(0o644)
    gnu, got = against_gnu(tar, b"", world_tmp, lambda d: ["-x", "-f", str(path), "-C", str(d)])
    assert_same(gnu, got)


def test_the_directory_may_be_a_symlink(tar, world_tmp):
    """-C through a symlink: the directory it names is the one extracted into, as with GNU tar."""
    def setup(target):
        (target / "real").mkdir()
        (target / "link").symlink_to("real")

    data = A.python([Dir("app"), File("app/f", b"1")], "ustar")
    gnu, got = against_gnu(tar, data, world_tmp, lambda d: ["-x", "-f", "-", "-C", str(d / "link")], setup=setup)
    assert_same(gnu, got)
    assert got.tree["real/app/f"]["content"] == b"1" and got.tree["link"]["kind"] == "symlink"


def test_hard_links_share_an_inode(tar, world_tmp):
    data = A.gnu([Dir("d"), File("d/a", b"same\n", 0o640), Hardlink("d/b", "d/a"), Hardlink("d/c", "d/a")], "gnu")
    gnu, got = against_gnu(tar, data, world_tmp, COMMANDS["tilt"])
    assert_same(gnu, got)
    assert got.tree["d/a"]["ino"] == got.tree["d/b"]["ino"] == got.tree["d/c"]["ino"]
    assert got.tree["d/a"]["nlink"] == 3


# --- errors, compared with GNU tar -------------------------------------------------------------

def both(tar, args, stdin: bytes, world_tmp: Path, setup=None):
    results = []
    for label, argv in (("gnu", [GNU_TAR]), ("ours", tar)):
        target = world_tmp / label
        target.mkdir()
        if setup:
            setup(target)
        results.append(run(argv, args(target), stdin))
    return results


GOOD = A.python([File("a", b"a" * 1000), File("b", b"b")], "ustar")
FATAL = "tar: Error is not recoverable: exiting now"
FAILED = "tar: Exiting with failure status due to previous errors"


@pytest.mark.parametrize("case, args, stdin, key_lines, code", [
    ("missing -C directory", lambda d: ["-C", str(d / "missing"), "-x", "-f", "-"], GOOD,
     ["tar: {d}/missing: Cannot open: No such file or directory", FATAL], 2),
    ("missing archive file", lambda d: ["-x", "-f", str(d / "missing.tar"), "-C", str(d)], b"",
     ["tar: {d}/missing.tar: Cannot open: No such file or directory", FATAL], 2),
    ("truncated in a member's data", COMMANDS["tilt"], GOOD[:512 + 600], ["tar: Unexpected EOF in archive", FATAL], 2),
    ("truncated after the second header", COMMANDS["tilt"], GOOD[:2048], ["tar: Unexpected EOF in archive", FATAL], 2),
    ("garbage", COMMANDS["tilt"], b"this is not a tar archive\n" * 100, ["tar: This does not look like a tar archive"], 2),
    ("empty input", COMMANDS["tilt"], b"", ["tar: This does not look like a tar archive"], 2),
    ("member names with '..'", COMMANDS["tilt"],
     A.python([File("../x", b"1"), File("a/../../y", b"1"), File("ok", b"ok"), File("..", b"")], "ustar"),
     ["tar: ../x: Member name contains '..'", "tar: a/../../y: Member name contains '..'",
      "tar: ..: Member name contains '..'", FAILED], 2),
    ("absolute names", COMMANDS["tilt"], A.python([File("/abs/x", b"1"), Hardlink("/abs/h", "/abs/x")], "ustar"),
     ["tar: Removing leading `/' from member names"], 0),
    ("no end-of-archive marker", COMMANDS["tilt"], GOOD[:2560], [], 0),
    ("no -x", lambda d: ["-f", "-", "-C", str(d)], GOOD, [], 2),
])
def test_errors_like_gnu_tar(tar, world_tmp, case, args, stdin, key_lines, code):
    gnu, got = both(tar, args, stdin, world_tmp)
    for label, result in (("gnu", gnu), ("ours", got)):
        expected = [l.format(d=world_tmp / label) for l in key_lines]
        assert result.returncode == code, f"{case}: {label} exited {result.returncode}:\n{result.err}"
        missing = [l for l in expected if l not in lines(result.err)]
        assert not missing, f"{case}: {label} stderr lacks {missing}:\n{result.err}"
        assert all(l.startswith(("tar: ", "Try 'tar --help'")) for l in lines(result.err)), f"{case}: {label}:\n{result.err}"
    # Ours may leave less than GNU tar of a member cut short (it writes a temporary file and
    # renames it), but never a name GNU tar would not have made (no temporary file left behind),
    # and every complete member GNU tar extracted.
    gnu_tree, our_tree = A.snapshot(world_tmp / "gnu"), A.snapshot(world_tmp / "ours")
    assert set(our_tree) <= set(gnu_tree), case
    complete = {rel for rel, e in gnu_tree.items() if e["kind"] != "file" or e["content"] in (b"b", b"ok", b"1")}
    assert complete <= set(our_tree), case


@pytest.mark.parametrize("argv", [["--bogus", "-x"], ["-xq"], ["-x", "--file"], ["-x", "--touch=1"]],
                         ids=["long", "short", "missing-argument", "argument-not-taken"])
def test_a_command_line_it_cannot_parse(tar, world_tmp, argv):
    """GNU tar's EX_USAGE (64) and its Try line; nothing extracted."""
    gnu, got = both(tar, lambda d: ["-C", str(d), *argv], GOOD, world_tmp)
    usage = "Try 'tar --help' or 'tar --usage' for more information."
    assert usage in lines(gnu.err) and usage in lines(got.err), got.err
    assert gnu.returncode == got.returncode == 64, (gnu.err, got.err)
    assert list((world_tmp / "ours").iterdir()) == []


@pytest.mark.parametrize("option", ["--help", "--usage"])
def test_help(tar, option):
    result = subprocess.run([*tar, option], capture_output=True, text=True, env=TAR_ENV, timeout=30)
    assert result.returncode == 0 and result.stdout.startswith("Usage: tar"), result


@pytest.mark.parametrize("trailer", [bytes(1 << 20), os.urandom(1 << 20)], ids=["zeros", "garbage"])
def test_the_rest_of_stdin_is_drained(tar, world_tmp, trailer):
    """The writer (Tilt, kubectl) never gets EPIPE: after the end marker tar reads stdin to its end.
    (GNU tar 1.34 stops reading there: its writer does get EPIPE.)"""
    data = A.python([File("a", b"a" * 5000)], "ustar") + trailer
    target = world_tmp / "t"
    target.mkdir()
    process = subprocess.Popen([*tar, *COMMANDS["tilt"](target)], stdin=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=TAR_ENV, cwd="/")
    broken = []

    def feed():
        try:
            for i in range(0, len(data), 4096):
                process.stdin.write(data[i:i + 4096])
            process.stdin.close()
        except BrokenPipeError as error:
            broken.append(error)

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    try:
        writer.join(30)
        stderr = read_rest(process.stderr, 60).decode(errors="replace")
        assert process.wait(30) == 0, stderr
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert not writer.is_alive(), "tar stopped reading stdin but did not exit"
    assert not broken, "tar closed stdin before its end: the writer got EPIPE"
    assert not any(s in stderr for s in SANITIZER_REPORT), stderr
    assert (target / "a").read_bytes() == b"a" * 5000


def test_verbose_lists_the_members_on_stdout(tar, world_tmp):
    data = A.gnu([Dir("app"), File("app/a", b"1"), Symlink("app/l", "a"), Dir("app/sub"), File("app/sub/b", b"2")], "gnu")
    gnu, got = both(tar, lambda d: ["-xvf", "-", "-C", str(d)], data, world_tmp)
    assert got.returncode == 0 and lines(got.out) == lines(gnu.out) == ["app/", "app/a", "app/l", "app/sub/", "app/sub/b"]


# --- ours only: what the contract promises beyond GNU tar --------------------------------------

@pytest.mark.skipif(not IS_ROOT, reason="chown to another uid needs root (CI runs the suite as root)")
def test_owner_is_numeric_never_looked_up(ours, world_tmp):
    """As root the archive's uid/gid are used as numbers, whatever its user and group names say."""
    data = A.python([File("f", b"x", 0o640, uid=1234, gid=5678)], "ustar")
    # tarfile writes empty names; put "root" in them by hand (uname at 265, gname at 297).
    block = bytearray(data[:512])
    block[265:269] = block[297:301] = b"root"
    block[148:156] = b"%06o\0 " % A.checksum(bytes(block))
    target = world_tmp / "t"
    target.mkdir()
    result = run(ours, COMMANDS["tilt"](target), bytes(block) + data[512:])
    assert result.returncode == 0, result.err
    st = (target / "f").stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (1234, 5678, 0o640)


def test_global_pax_headers_are_ignored(ours, world_tmp):
    """A pax 'g' header changes nothing (GNU tar would rename every member after a global path)."""
    data = (A.pax(A.pax_record("path", "global-name") + A.pax_record("mtime", "12345"), typeflag=b"g")
            + A.member("a", b"x", mtime=A.T0 // A.NS) + A.member("b", b"y", mtime=A.T0 // A.NS) + A.END)
    target = world_tmp / "t"
    target.mkdir()
    result = run(ours, COMMANDS["tilt"](target), data)
    assert result.returncode == 0, result.err
    assert sorted(p.name for p in target.iterdir()) == ["a", "b"]
    assert (target / "a").stat().st_mtime_ns == A.T0 and (target / "b").read_bytes() == b"y"


class Escape:
    """A directory `base` holding the -C target, an `outside` sibling tree, and a file beside them."""

    def __init__(self, base: Path):
        self.base, self.target, self.outside = base, base / "target", base / "outside"
        self.target.mkdir()
        (self.outside / "dir").mkdir(parents=True)
        (self.outside / "file").write_text("original\n")
        (self.outside / "dir" / "inner").write_text("inner\n")
        (base / "beside").write_text("beside\n")
        self.before = self.around()

    def around(self) -> dict:
        """Everything beside the target, to the inode and link count, and the target's identity
        (its own times change with what is extracted into it)."""
        st = os.lstat(self.target)
        return A.snapshot(self.base, skip=("target",)) | {"target": (st.st_mode, st.st_uid, st.st_gid, st.st_ino)}

    def prepare(self, setup) -> None:
        """setup(target): what is already in the target before extracting; the snapshot of
        everything beside it is taken again afterwards."""
        if setup:
            setup(self.target)
            self.before = self.around()

    def assert_untouched(self, what: str) -> None:
        after = self.around()
        changed = sorted(k for k in set(self.before) | set(after) if self.before.get(k) != after.get(k))
        assert not changed, f"{what}: changed outside the -C directory: {changed}"


def escapes(o: Path) -> dict:
    """name -> (entries, setup(target, outside)) of archives trying to write outside the target."""
    return {
        "dotdot": ([File("../beside", b"pwned"), File("../outside/new", b"pwned")], None),
        "dotdot-inside-a-path": ([File("a/../../beside", b"pwned")], None),
        "absolute-symlink-then-through-it": ([Symlink("evil", str(o)), File("evil/file", b"pwned"),
                                              File("evil/new", b"pwned")], None),
        "symlink-to-root-then-through-it": ([Symlink("root", "/"), File(f"root{o}/file", b"pwned")], None),
        "up-then-through-it": ([Symlink("up", ".."), File("up/beside", b"pwned"), File("up/outside/new", b"pwned")], None),
        "relative-chain-out": ([Dir("sub"), Symlink("sub/l2", "../.."), Symlink("l1", "sub"),
                                File("l1/l2/beside", b"pwned")], None),
        "relative-symlink-to-sibling": ([Symlink("s", "../outside"), File("s/file", b"pwned"),
                                         Dir("s/dir", 0o777), File("s/dir/inner", b"pwned")], None),
        "hard-link-to-dotdot": ([Hardlink("h", "../outside/file"), File("h", b"pwned")], None),
        "hard-link-through-a-symlink": ([Symlink("evil", "../outside"), Hardlink("h", "evil/file"),
                                         File("h", b"pwned")], None),
        "hard-link-through-an-absolute-symlink": ([Symlink("evil", str(o)), Hardlink("h", "evil/file")], None),
        "existing-symlink-to-outside": ([File("pre/file", b"pwned"), File("pre/new", b"pwned"),
                                         Dir("pre/dir", 0o777)], lambda t: (t / "pre").symlink_to(o)),
        "existing-relative-symlink-to-outside": ([File("pre/file", b"pwned")],
                                                 lambda t: (t / "pre").symlink_to("../outside")),
        "existing-symlink-in-a-deeper-path": ([File("app/pre/dir/inner", b"pwned")],
                                              lambda t: ((t / "app").mkdir(), (t / "app" / "pre").symlink_to(o))),
    }


@pytest.mark.parametrize("case", list(escapes(Path("/x"))))
@pytest.mark.emulator_limit(OPENAT2, when={"resolver": "openat2"})
def test_no_write_lands_outside_the_directory(ours, resolver, world_tmp, case):
    box = Escape(world_tmp)
    entries, setup = escapes(box.outside)[case]
    box.prepare(setup)
    for fmt in ("gnu", "pax"):
        result = run(ours, COMMANDS["tilt"](box.target), A.python(entries, fmt), env=resolver)
        assert result.returncode == 2, f"{case} ({fmt}): exited {result.returncode}\n{result.err}"
        assert FAILED in lines(result.err), result.err
        box.assert_untouched(f"{case} ({fmt})")


@pytest.mark.parametrize("case", ["symlink-final-component", "dir-over-symlink", "hard-link-to-symlink-then-write",
                                  "metadata-through-symlink"])
@pytest.mark.emulator_limit(OPENAT2, when={"resolver": "openat2"})
def test_symlinks_to_outside_are_replaced_never_written_through(ours, resolver, world_tmp, case):
    """A member whose own name is a symlink to outside replaces the link; the outside is untouched."""
    box = Escape(world_tmp)
    o = box.outside
    cases = {
        "symlink-final-component": ([File("pre", b"new", 0o600)], lambda t: (t / "pre").symlink_to(o / "file")),
        "dir-over-symlink": ([Dir("pre", 0o777, A.T1)], lambda t: (t / "pre").symlink_to(o / "dir")),
        "hard-link-to-symlink-then-write": ([Symlink("s", str(o / "file")), Hardlink("h", "s"), File("h", b"pwned")],
                                            None),
        "metadata-through-symlink": ([Symlink("s", str(o / "file")), Fifo("s", 0o777), Symlink("t", str(o / "dir")),
                                     Dir("t", 0o777, A.T1)], None),
    }
    entries, setup = cases[case]
    box.prepare(setup)
    result = run(ours, COMMANDS["tilt"](box.target), A.python(entries, "pax"), env=resolver)
    box.assert_untouched(case)
    assert result.returncode in (0, 2), result.err
    if case == "symlink-final-component":
        assert result.returncode == 0, result.err
        assert not (box.target / "pre").is_symlink() and (box.target / "pre").read_bytes() == b"new"


@pytest.mark.emulator_limit(OPENAT2, when={"resolver": "openat2"})
def test_absolute_names_land_inside(ours, resolver, world_tmp):
    box = Escape(world_tmp)
    outside_file = box.outside / "file"
    result = run(ours, COMMANDS["tilt"](box.target),
                 A.python([File(str(outside_file), b"inside"), Hardlink("/h", str(outside_file))], "pax"), env=resolver)
    assert result.returncode == 0, result.err
    assert "tar: Removing leading `/' from member names" in lines(result.err)
    inside = box.target / str(outside_file).lstrip("/")
    assert inside.read_bytes() == b"inside" and (box.target / "h").stat().st_ino == inside.stat().st_ino
    box.assert_untouched("absolute names")


@pytest.mark.parametrize("case", ["existing", "same-archive", "dotdot-staying-inside"])
@pytest.mark.emulator_limit(OPENAT2, when={"resolver": "openat2"})
def test_symlinks_that_stay_inside_are_followed(ours, resolver, world_tmp, case):
    """openat2 follows a symlink that stays inside; the fallback resolver refuses every symlink in a
    parent path (exit 2), and neither writes outside."""
    box = Escape(world_tmp)
    setups = {
        "existing": ([File("inner/x", b"in")], lambda t: ((t / "real").mkdir(), (t / "inner").symlink_to("real"))),
        "same-archive": ([Dir("real"), Symlink("inner", "real"), File("inner/x", b"in")], None),
        "dotdot-staying-inside": ([Dir("a"), Dir("real"), Symlink("a/up", "../real"), File("a/up/x", b"in")], None),
    }
    entries, setup = setups[case]
    box.prepare(setup)
    result = run(ours, COMMANDS["tilt"](box.target), A.python(entries, "gnu"), env=resolver)
    box.assert_untouched(case)
    if resolver:
        assert result.returncode == 2, result.err
        assert not (box.target / "real" / "x").exists()
    else:
        assert result.returncode == 0, result.err
        assert (box.target / "real" / "x").read_bytes() == b"in"


@pytest.mark.skipif(not IS_ROOT, reason="chroot needs root (CI runs the suite as root)")
@pytest.mark.emulator_limit(OPENAT2, when={"env": {}})
@pytest.mark.parametrize("env", [{}, FALLBACK], ids=["openat2", "fallback"])
def test_tilt_command_in_a_container_root(static_wrapper, world_tmp, env):
    """`tar -C / -x -f -` with / a chroot holding only the static build: with the root as the
    directory everything is inside, absolute symlinks included (/app -> /srv/app is common), with
    either resolver."""
    if UNDER_TEST:
        pytest.skip("needs our static build inside the chroot")
    root = world_tmp
    shutil.copyfile(static_wrapper, root / "restart-wrapper")
    (root / "restart-wrapper").chmod(0o755)
    (root / "tar").symlink_to("restart-wrapper")
    (root / "srv" / "app").mkdir(parents=True)
    (root / "app").symlink_to("/srv/app")
    (root / "srv" / "app" / "old.txt").write_text("old\n")
    # No member for app itself (a sync of single files): GNU tar replaces a symlink with the
    # directory a member names, without --keep-directory-symlink (compared in the oracle tests).
    data = A.python([File("app/new.txt", b"new\n"), File("app/old.txt", b"changed\n"),
                     Symlink("app/hosts", "/etc/hosts"), File("/etc/motd", b"motd\n"), File("../../up", b"up")], "gnu")

    def enter():
        os.chroot(root)
        os.chdir("/")

    result = subprocess.run(["/tar", "-C", "/", "-x", "-f", "-"], input=data, capture_output=True,
                            env={**env, "LC_ALL": "C"}, preexec_fn=enter, timeout=30)
    err = result.stderr.decode(errors="replace")
    assert result.returncode == 2 and "tar: ../../up: Member name contains '..'" in err, err
    assert (root / "app").is_symlink(), "the image's /app symlink was replaced"
    assert (root / "srv" / "app" / "new.txt").read_text() == "new\n", err
    assert (root / "srv" / "app" / "old.txt").read_text() == "changed\n", err
    assert os.readlink(root / "srv" / "app" / "hosts") == "/etc/hosts"
    assert (root / "etc" / "motd").read_text() == "motd\n"
    assert not (world_tmp.parent / "up").exists()


# --- install: the multi-call names --------------------------------------------------------------

def test_install_lays_down_tar_and_rm(wrapper, world_tmp):
    target = world_tmp / "restart-process"
    for attempt in (1, 2):  # the second install changes nothing and succeeds
        result = subprocess.run([str(wrapper), "install", str(target)], capture_output=True, text=True, env=ENV, timeout=30)
        assert result.returncode == 0, f"install #{attempt}: {result.stderr}"
        assert sorted(p.name for p in target.iterdir()) == ["bin", "restart-wrapper"]
        assert sorted(p.name for p in (target / "bin").iterdir()) == ["rm", "tar", "test"]
        for name in ("tar", "rm", "test"):
            assert os.readlink(target / "bin" / name) == "../restart-wrapper"
    # Found on PATH as `tar`, `rm` and `test`, the way Tilt and kubectl exec them (argv[0] is the bare name).
    for probe, status in ((world_tmp, 0), (world_tmp / "nothing", 1)):
        result = subprocess.run(["test", "-d", str(probe)], capture_output=True, env={**TAR_ENV, "PATH": str(target / "bin")},
                                timeout=30)
        assert (result.returncode, result.stderr) == (status, b""), probe
    path_env = {**TAR_ENV, "PATH": str(target / "bin")}
    (world_tmp / "x").mkdir()
    data = A.python([Dir("app"), File("app/f", b"synced\n")], "ustar")
    result = subprocess.run(["tar", "-C", str(world_tmp / "x"), "-x", "-f", "-"], input=data, capture_output=True,
                            env=path_env, timeout=30)
    assert result.returncode == 0, result.stderr
    assert (world_tmp / "x" / "app" / "f").read_bytes() == b"synced\n"
    result = subprocess.run(["rm", "-rf", str(world_tmp / "x" / "app"), str(world_tmp / "missing")], capture_output=True,
                            env=path_env, timeout=30)
    assert result.returncode == 0, result.stderr
    assert list((world_tmp / "x").iterdir()) == []


@pytest.mark.parametrize("build", RELEASES)
def test_the_wrapper_still_refuses_unknown_names(multicall, world_tmp, build):
    """Only the names tar, rm and test select a job: any other argv[0] is the wrapper itself."""
    if UNDER_TEST:
        pytest.skip("about our build")
    other = world_tmp / "untar"
    other.symlink_to(multicall[build] / "restart-wrapper")
    result = subprocess.run([str(other), "-x", "-f", "-"], input=GOOD, capture_output=True, env=TAR_ENV, timeout=30)
    assert result.returncode == 2 and b"unknown command" in result.stderr
    version = subprocess.run([str(other), "version"], capture_output=True, text=True, env=TAR_ENV, timeout=30)
    assert version.returncode == 0 and version.stdout.startswith("restart-wrapper ")


def test_no_temporary_file_is_left_behind(tar, world_tmp):
    target = world_tmp / "t"
    target.mkdir()
    (target / "d").mkdir()
    (target / "d" / "a").write_text("old")
    result = run(tar, COMMANDS["tilt"](target), A.python([Dir("d"), File("d/a", b"1" * 100000), File("d/b", b"")], "ustar"))
    assert result.returncode == 0, result.err
    assert sorted(p.name for p in (target / "d").iterdir()) == ["a", "b"]
