"""The command line, exit statuses, install, trigger, and running with nothing else around."""

import os
import shutil
import signal
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from .harness import BUILD, ENV



def run(wrapper, *args, **kwargs):
    return subprocess.run([str(wrapper), *args], capture_output=True, text=True, env=ENV, timeout=20, **kwargs)


def test_exit_codes_pass_through(wrapper):
    # All 256 statuses, in one shell loop per status so a failure names it.
    for code in range(256):
        result = run(wrapper, "run", "--", "/bin/sh", "-c", f"exit {code}")
        assert result.returncode == code, (code, result.stderr)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGKILL, signal.SIGUSR1])
def test_death_by_signal_is_128_plus_n(wrapper, sig):
    result = run(wrapper, "run", "--", "/bin/sh", "-c", f"kill -{sig.value} $$")
    assert result.returncode == 128 + sig.value


def test_not_found_is_127_and_not_executable_is_126(wrapper, tmp_path):
    missing = run(wrapper, "run", "--", str(tmp_path / "nope"))
    assert missing.returncode == 127 and "cannot run" in missing.stderr
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o644)
    for target in ("/etc", str(script)):
        denied = run(wrapper, "run", "--", target)
        assert denied.returncode == 126 and "Permission denied" in denied.stderr


def test_path_lookup_without_a_shell(wrapper):
    assert run(wrapper, "run", "--", "true").returncode == 0
    assert run(wrapper, "run", "--", "false").returncode == 1


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "missing command"),
        (["bogus"], "unknown command"),
        (["run"], "missing COMMAND"),
        (["run", "--"], "missing COMMAND"),
        (["run", "--bogus=1", "--", "true"], "unknown option --bogus"),
        (["run", "--debounce=5", "--", "true"], "expected a duration"),
        (["run", "--stop-timeout", "1.5s", "--", "true"], "expected a duration"),
        (["run", "--stop-signal=BOOM", "--", "true"], "expected TERM"),
        (["run", "--exit-policy=crash", "--", "true"], "expected restart or continue"),
        (["run", "--restart-file=relative", "--", "true"], "absolute path"),
        (["run", "--watch"], "missing value"),
        (["install"], "install takes one absolute directory"),
        (["install", "relative"], "install takes one absolute directory"),
        (["trigger", "extra"], "trigger takes only"),
    ],
)
def test_usage_errors_exit_2_with_one_line(wrapper, args, message):
    result = run(wrapper, *args)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_both_option_forms_and_a_program_named_like_an_option(wrapper, tmp_path):
    program = tmp_path / "-h"
    shutil.copy("/bin/true", program)
    result = run(wrapper, "run", "--stop-timeout", "1s", "--debounce=10ms", "--", str(program))
    assert result.returncode == 0
    assert run(wrapper, "run", "--stop-signal", "SIGINT", "true").returncode == 0  # COMMAND without "--"


def test_version_and_help(wrapper):
    version = run(wrapper, "version")
    assert version.returncode == 0 and version.stdout.startswith("restart-wrapper ")
    assert (BUILD.parent / "VERSION").read_text().strip() in version.stdout
    helped = run(wrapper, "help")
    assert helped.returncode == 0 and "--restart-file" in helped.stdout and "--exit-policy" in helped.stdout


@pytest.fixture
def shared_tmp():
    """A directory the unprivileged user can reach (pytest's tmp_path is under a 0700 root directory)."""
    path = Path(tempfile.mkdtemp(prefix="restart-wrapper-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def test_install_into_a_fresh_directory_as_non_root(wrapper, shared_tmp):
    shared_tmp.chmod(0o777)
    target = shared_tmp / "deep" / "restart-process"
    os.umask(0o077)  # a strict umask must not take the execute bits away
    try:
        result = subprocess.run([str(wrapper), "install", str(target)], capture_output=True, text=True, env=ENV,
                                user=65534, group=65534, timeout=20)
    finally:
        os.umask(0o022)
    assert result.returncode == 0, result.stderr
    installed = target / "restart-wrapper"
    assert stat.S_IMODE(installed.stat().st_mode) == 0o755
    assert installed.stat().st_uid == 65534
    assert installed.read_bytes() == wrapper.read_bytes()
    assert sorted(p.name for p in target.iterdir()) == ["restart-wrapper"]  # no temporary file left
    assert run(installed, "version").returncode == 0


def test_install_reports_an_unwritable_directory(wrapper, shared_tmp):
    result = subprocess.run([str(wrapper), "install", str(shared_tmp / "x")], capture_output=True, text=True,
                            env=ENV, user=65534, group=65534, timeout=20)
    assert result.returncode == 1 and "cannot create" in result.stderr


def test_trigger_writes_the_restart_file(wrapper, tmp_path):
    target = tmp_path / "restart"
    assert run(wrapper, "trigger", f"--restart-file={target}").returncode == 0
    before = target.stat().st_mtime_ns
    assert target.read_text().strip().isdigit()
    assert run(wrapper, "trigger", "--restart-file", str(target)).returncode == 0
    assert target.stat().st_mtime_ns >= before
    failed = run(wrapper, "trigger", f"--restart-file={tmp_path}/missing-dir/restart")
    assert failed.returncode == 1 and "cannot open" in failed.stderr


def test_the_release_build_is_static_and_small(static_wrapper):
    assert static_wrapper.stat().st_size <= 100 * 1024
    with open(static_wrapper, "rb") as binary:
        elf = binary.read()
    assert elf[:4] == b"\x7fELF"
    assert b".interp" not in elf and b"ld-linux" not in elf  # no dynamic loader requested


def test_runs_in_a_chroot_with_nothing_but_itself(static_wrapper, tmp_path):
    """No shell, no libc, no /proc: the wrapper and one static program are the whole filesystem."""
    root = tmp_path / "root"
    root.mkdir()
    shutil.copy(static_wrapper, root / "restart-wrapper")
    shutil.copy(BUILD / "chroot-probe", root / "probe")
    process = subprocess.Popen(
        ["chroot", str(root), "/restart-wrapper", "run", "--restart-file=/trigger", "--", "/probe", "x"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout.readline().startswith("probe started")
        (root / "trigger").write_text("go")
        assert process.stdout.readline().startswith("probe started")  # restarted inside the chroot
        # `trigger` works there too: no shell needed to write the restart file.
        assert subprocess.run(["chroot", str(root), "/restart-wrapper", "trigger", "--restart-file=/trigger"],
                              timeout=10).returncode == 0
        assert process.stdout.readline().startswith("probe started")
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 128 + signal.SIGTERM
    assert "restarting /probe: /trigger changed" in process.stderr.read()
