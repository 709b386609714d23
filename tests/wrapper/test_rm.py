"""`restart-wrapper rm`: what Tilt's live_update runs for deleted files (`rm -rf PATH...`).

Checked against coreutils rm, the oracle: the same command in the same tree must leave the same
tree, exit with the same status and say the same first line. Then what matters beyond it: a
symlink is removed as a link, never followed; deep trees; read-only files; refusing '/'.

RM_UNDER_TEST=/usr/bin/rm points every case at another implementation, to check the tests:
coreutils passes all but the trailing-slash case (it empties a symlinked directory there).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from . import archives as A
from .harness import BUILDS, ENV, IS_ROOT, NO_OTHER_TOOLS, NOBODY, SANITIZER_REPORT, tool_argv, tool_variants

GNU_RM = "/usr/bin/rm" if Path("/usr/bin/rm").exists() else shutil.which("rm")
UNDER_TEST = os.environ.get("RM_UNDER_TEST")
RM_ENV = {**NO_OTHER_TOOLS, "LC_ALL": "C", "LANG": "C"}
RM_ENV.pop("POSIXLY_CORRECT", None)


@pytest.fixture(params=tool_variants("rm"))
def rm(request, multicall) -> list[str]:
    """Our rm, as `restart-wrapper rm` and through a symlink named rm (the multi-call name)."""
    return [UNDER_TEST] if UNDER_TEST else tool_argv(multicall, request.param, "rm")


def run(argv, args, *, cwd, user=None, timeout=120) -> subprocess.CompletedProcess:
    kwargs = {}
    if user == "nobody" and IS_ROOT:
        kwargs = {"user": NOBODY, "group": NOBODY, "extra_groups": []}
    if argv[0] == GNU_RM:  # named by argv[0]: "rm: ..." as when run from PATH
        kwargs["executable"], argv = GNU_RM, ["rm", *argv[1:]]
    result = subprocess.run([*argv, *args], capture_output=True, text=True, env=RM_ENV, cwd=cwd, timeout=timeout,
                            stdin=subprocess.DEVNULL, **kwargs)
    assert not any(s in result.stderr for s in SANITIZER_REPORT), result.stderr
    return result


def relative_targets(tree: dict, root: Path) -> dict:
    """The two trees sit in different directories: absolute symlink targets are compared from there."""
    for entry in tree.values():
        if "target" in entry:
            entry["target"] = entry["target"].replace(str(root), "ROOT")
    return tree


def chown_tree(path: Path) -> None:
    for p in [path, *path.rglob("*")]:
        os.chown(p, NOBODY, NOBODY, follow_symlinks=False)


# --- trees the cases start from ------------------------------------------------------------------

def standard(root: Path) -> None:
    """root/work (the cwd) holding files, dirs, links; root/outside beside it."""
    work, outside = root / "work", root / "outside"
    (outside / "dir").mkdir(parents=True)
    (outside / "file").write_text("outside\n")
    (outside / "dir" / "inner").write_text("inner\n")
    (work / "d" / "sub" / "deeper").mkdir(parents=True)
    (work / "d" / "a").write_text("a\n")
    (work / "d" / "sub" / "b").write_text("b\n")
    (work / "d" / "sub" / "deeper" / "c").write_text("c\n")
    os.mkfifo(work / "d" / "fifo")
    (work / "d" / "link-out").symlink_to("../../outside")
    (work / "d" / "abs-link-out").symlink_to(outside / "dir")
    (work / "e").mkdir()
    (work / "f").write_text("f\n")
    (work / "-f").write_text("dash\n")
    (work / "ro").write_text("read-only\n")
    (work / "ro").chmod(0o444)
    (work / "link-to-outside").symlink_to("../outside")
    (work / "link-to-outside-file").symlink_to(outside / "file")
    (work / "dangling").symlink_to("nowhere")
    (work / "link-to-d").symlink_to("d")


CASES = {
    "file": ["f"],
    "missing": ["missing"],
    "force-missing": ["-f", "missing"],
    "dir-without-r": ["d"],
    "r": ["-r", "d"],
    "R": ["-R", "d"],
    "long-options": ["--recursive", "--force", "d", "missing", "f"],
    "rf-bundle": ["-rf", "d", "missing", "f"],
    "fr-separate": ["-f", "-r", "d"],
    "no-operand": [],
    "force-no-operand": ["-f"],
    "recursive-no-operand": ["-r"],
    "d-empty": ["-d", "e"],
    "d-full": ["-d", "d"],
    "dot": ["-rf", "."],
    "dotdot": ["-rf", ".."],
    "dir-dotdot": ["-rf", "d/.."],
    "dir-dot": ["-rf", "d/."],
    "double-dash": ["--", "-f"],
    "read-only-file": ["ro"],
    "read-only-file-forced": ["-f", "ro"],
    "symlink-to-dir": ["link-to-outside"],
    "symlink-to-dir-recursive": ["-rf", "link-to-outside", "link-to-d"],
    "symlink-to-file": ["link-to-outside-file"],
    "dangling-symlink": ["dangling"],
    "trailing-slash": ["-r", "d/"],
    "through-a-symlinked-parent": ["-rf", "link-to-d/sub", "link-to-d/a"],
    "some-fail": ["-r", "f", "missing", "d"],
    "unknown-option": ["--bogus", "f"],
    "verbose": ["-rv", "d", "f"],
    "everything": ["-rf", "d", "e", "f", "-f", "ro", "link-to-outside", "link-to-outside-file", "dangling",
                   "link-to-d", "missing"],
}


@pytest.mark.parametrize("user", ["root", "nobody"])
@pytest.mark.parametrize("case", list(CASES))
def test_like_coreutils(rm, world_tmp, case, user):
    if user == "root" and not IS_ROOT:
        pytest.skip("running as root needs root (CI runs the suite as root)")
    args = CASES[case]
    outcomes = {}
    for label, argv in (("gnu", [GNU_RM]), ("ours", rm)):
        root = world_tmp / label
        root.mkdir(mode=0o755)
        standard(root)
        if user == "nobody" and IS_ROOT:
            chown_tree(root)
        outside = A.snapshot(root / "outside")
        started = time.time_ns()
        result = run(argv, args, cwd=root / "work", user=user)
        assert A.snapshot(root / "outside") == outside, f"{label} changed the outside tree"
        outcomes[label] = (result, relative_targets(A.snapshot(root / "work"), root), started)
    (gnu, gnu_tree, started), (got, got_tree, _) = outcomes["gnu"], outcomes["ours"]
    problems = A.differences(gnu_tree, got_tree, started, keys=("kind", "mode", "uid", "gid", "content", "target"))
    assert got.returncode == gnu.returncode and not problems, (
        f"rm {' '.join(args)}: ours exited {got.returncode} (coreutils {gnu.returncode}); trees differ:\n  "
        + "\n  ".join(problems) + f"\nours: {got.stderr}\ncoreutils: {gnu.stderr}")
    gnu_lines, got_lines = gnu.stderr.splitlines(), got.stderr.splitlines()
    assert bool(gnu_lines) == bool(got_lines), (got.stderr, gnu.stderr)
    if gnu_lines:
        assert got_lines[0] == gnu_lines[0], (got.stderr, gnu.stderr)
        cannot = sorted(l for l in gnu_lines if l.startswith("rm: cannot remove"))
        assert sorted(l for l in got_lines if l.startswith("rm: cannot remove")) == cannot, (got.stderr, gnu.stderr)
    if case == "verbose":
        assert sorted(got.stdout.splitlines()) == sorted(gnu.stdout.splitlines())


@pytest.mark.parametrize("user", ["root", "nobody"])
def test_permission_denied_like_coreutils(rm, world_tmp, user):
    """A directory the user may not write keeps its entries; the rest goes; exit 1."""
    if user == "root" and not IS_ROOT:
        pytest.skip("running as root needs root (CI runs the suite as root)")
    outcomes = {}
    for label, argv in (("gnu", [GNU_RM]), ("ours", rm)):
        root = world_tmp / label
        (root / "work" / "locked" / "inner").mkdir(parents=True)
        (root / "work" / "locked" / "inner" / "x").write_text("x")
        (root / "work" / "locked" / "y").write_text("y")
        (root / "work" / "open").mkdir()
        (root / "work" / "open" / "z").write_text("z")
        (root / "work" / "unreadable").mkdir()
        (root / "work" / "unreadable" / "w").write_text("w")
        root.chmod(0o755)
        if user == "nobody" and IS_ROOT:
            chown_tree(root)
        (root / "work" / "locked").chmod(0o555)
        (root / "work" / "unreadable").chmod(0o300)
        result = run(argv, ["-rf", "locked", "open", "unreadable"], cwd=root / "work", user=user)
        (root / "work" / "locked").chmod(0o755) if (root / "work" / "locked").exists() else None
        (root / "work" / "unreadable").chmod(0o755) if (root / "work" / "unreadable").exists() else None
        outcomes[label] = (result, A.snapshot(root / "work"))
    (gnu, gnu_tree), (got, got_tree) = outcomes["gnu"], outcomes["ours"]
    assert got.returncode == gnu.returncode, (got.stderr, gnu.stderr)
    assert sorted(got_tree) == sorted(gnu_tree), (got.stderr, gnu.stderr)
    assert (got.stderr == "") == (gnu.stderr == ""), (got.stderr, gnu.stderr)


def test_tilt_deletes(rm, world_tmp):
    """Tilt's exact command: absolute paths, some of which no longer exist."""
    (world_tmp / "app" / "pkg").mkdir(parents=True)
    (world_tmp / "app" / "pkg" / "gone.py").write_text("x")
    (world_tmp / "app" / "old.txt").write_text("x")
    (world_tmp / "app" / "keep.txt").write_text("keep")
    result = run(rm, ["-rf", str(world_tmp / "app" / "pkg"), str(world_tmp / "app" / "old.txt"),
                      str(world_tmp / "app" / "b-does-not-exist"), str(world_tmp / "nope" / "deeper")], cwd="/")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert sorted(p.name for p in (world_tmp / "app").iterdir()) == ["keep.txt"]


def test_symlink_to_a_directory_outside_is_removed_as_a_link(rm, world_tmp):
    outside = world_tmp / "outside"
    (outside / "sub").mkdir(parents=True)
    (outside / "sub" / "file").write_text("keep\n")
    (world_tmp / "work" / "tree").mkdir(parents=True)
    (world_tmp / "work" / "link").symlink_to(outside)
    (world_tmp / "work" / "tree" / "abs").symlink_to(outside)
    (world_tmp / "work" / "tree" / "rel").symlink_to("../../outside/sub")
    before = A.snapshot(outside)
    result = run(rm, ["-rf", "link", "tree"], cwd=world_tmp / "work")
    assert result.returncode == 0, result.stderr
    assert list((world_tmp / "work").iterdir()) == []
    assert A.snapshot(outside) == before


def test_a_trailing_slash_never_leads_into_a_symlinked_directory(rm, world_tmp):
    """`rm -rf link/` with link -> a directory outside: coreutils empties the directory (the
    slash resolves the link); ours does not go through the link at all, whatever it answers."""
    outside = world_tmp / "outside"
    (outside / "sub").mkdir(parents=True)
    (outside / "sub" / "file").write_text("keep\n")
    (world_tmp / "work").mkdir()
    (world_tmp / "work" / "link").symlink_to(outside)
    before = A.snapshot(outside)
    result = run(rm, ["-rf", "link/"], cwd=world_tmp / "work")
    assert result.returncode in (0, 1), result.stderr
    assert A.snapshot(outside) == before


@pytest.mark.parametrize("build", list(BUILDS))
def test_a_deep_tree(multicall, world_tmp, build):
    """Deeper than PATH_MAX (2100 levels of 'd/' are 4200 bytes): no recursion or path length limit.
    (Making such a tree takes a second or so here: coreutils is not run on one too, nor the rm name.)"""
    rm = [UNDER_TEST] if UNDER_TEST else [str(multicall[build] / "restart-wrapper"), "rm"]
    top = world_tmp
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for level in range(2100):
            os.mkdir("d", dir_fd=fd)
            if level % 300 == 0:
                os.close(os.open("file", os.O_WRONLY | os.O_CREAT, 0o444, dir_fd=fd))
            child = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
    finally:
        os.close(fd)
    result = run(rm, ["-rf", "d", "file"], cwd=top)
    assert result.returncode == 0, result.stderr[-2000:]
    assert list(top.iterdir()) == []


@pytest.mark.parametrize("user", ["root", "nobody"])
def test_read_only_files_go_with_force(rm, world_tmp, user):
    if user == "root" and not IS_ROOT:
        pytest.skip("running as root needs root (CI runs the suite as root)")
    work = world_tmp / "work"
    (work / "d").mkdir(parents=True)
    for name in ("ro", "d/ro2"):
        (work / name).write_text("x")
        (work / name).chmod(0o444)
    (work / "d" / "ro-dir").mkdir()
    (work / "d" / "ro-dir").chmod(0o555)  # empty, so removable even by its owner
    if user == "nobody" and IS_ROOT:
        chown_tree(work)
    result = run(rm, ["-rf", "ro", "d"], cwd=work, user=user)
    assert result.returncode == 0, result.stderr
    assert list(work.iterdir()) == []


@pytest.mark.skipif(not IS_ROOT, reason="chroot needs root (CI runs the suite as root)")
@pytest.mark.parametrize("operand", ["/", "//", "/."])
def test_refuses_the_root(static_wrapper, world_tmp, operand):
    """`rm -rf /` in a chroot holding only the static build (so a mistake costs nothing)."""
    if UNDER_TEST:
        pytest.skip("needs our static build inside the chroot")
    root = world_tmp
    shutil.copyfile(static_wrapper, root / "restart-wrapper")
    (root / "restart-wrapper").chmod(0o755)
    (root / "rm").symlink_to("restart-wrapper")
    (root / "precious").mkdir()
    (root / "precious" / "file").write_text("keep\n")
    before = A.snapshot(root)

    def enter():
        os.chroot(root)
        os.chdir("/precious")

    result = subprocess.run(["/rm", "-rf", operand], capture_output=True, text=True, env={"LC_ALL": "C"},
                            preexec_fn=enter, timeout=30)
    assert result.returncode == 1, result.stderr
    assert A.snapshot(root) == before
    expected = {"/": "rm: it is dangerous to operate recursively on '/'",
                "//": "rm: it is dangerous to operate recursively on '//' (same as '/')",
                "/.": "rm: refusing to remove '.' or '..' directory: skipping '/.'"}[operand]
    assert result.stderr.splitlines()[0] == expected, result.stderr
