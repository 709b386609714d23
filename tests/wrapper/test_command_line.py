"""The command line, exit statuses, install, trigger, and running with nothing else around."""

import os
import shutil
import signal
import stat
import subprocess
import time

import pytest

from tests.support.processes import read_line, read_rest
from .emulation import HOST_ARCH
from .harness import BUILD, ENV, NOBODY, cpu_ticks, ends, runnable_by_others, without_emulator_line

# Exits with COMMAND's status, as the tests of statuses need (the default, rerun, runs it again).
RESTART = "--exit-policy=restart"


def run(wrapper, *args, env=ENV, **kwargs):
    return subprocess.run([str(wrapper), *args], capture_output=True, text=True, env=env, timeout=20, **kwargs)


def test_exit_codes_pass_through(wrapper):
    # All 256 statuses, in one shell loop per status so a failure names it.
    for code in range(256):
        result = run(wrapper, "run", RESTART, "--", "/bin/sh", "-c", f"exit {code}")
        assert result.returncode == code, (code, result.stderr)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGKILL, signal.SIGUSR1])
def test_death_by_signal_is_128_plus_n(wrapper, sig):
    result = run(wrapper, "run", RESTART, "--", "/bin/sh", "-c", f"kill -{sig.value} $$")
    assert result.returncode == 128 + sig.value


def test_not_found_is_127_and_not_executable_is_126(wrapper, tmp_path):
    missing = run(wrapper, "run", RESTART, "--", str(tmp_path / "nope"))
    assert missing.returncode == 127 and "cannot run" in missing.stderr
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o644)
    for target in ("/etc", str(script)):
        denied = run(wrapper, "run", RESTART, "--", target)
        assert denied.returncode == 126 and "Permission denied" in denied.stderr


def test_path_lookup_without_a_shell(wrapper):
    assert run(wrapper, "run", RESTART, "--", "true").returncode == 0
    assert run(wrapper, "run", RESTART, "--", "false").returncode == 1


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
        (["run", "--stop-signal=BOOM", "--", "true"], "expected a signal name like TERM"),
        (["run", "--exit-policy=crash", "--", "true"], "expected rerun, restart or continue"),
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
    result = run(wrapper, "run", "--stop-timeout", "1s", "--debounce=10ms", "--exit-policy", "restart", "--",
                 str(program))
    assert result.returncode == 0
    assert run(wrapper, "run", "--stop-signal", "SIGINT", RESTART, "true").returncode == 0  # COMMAND without "--"


def test_version_and_help(wrapper):
    version = run(wrapper, "version")
    assert version.returncode == 0 and version.stdout.startswith("restart-wrapper ")
    assert (BUILD.parent / "VERSION").read_text().strip() in version.stdout
    helped = run(wrapper, "help")
    assert helped.returncode == 0 and "--restart-file" in helped.stdout and "--exit-policy" in helped.stdout


def run_as_nobody(binary, *args):
    return subprocess.run([str(binary), *args], capture_output=True, text=True, env=ENV, user=NOBODY,
                          group=NOBODY, cwd="/", timeout=20)


def test_install_into_a_fresh_directory_as_non_root(wrapper, world_tmp):
    world_tmp.chmod(0o777)
    target = world_tmp / "deep" / "restart-process"
    os.umask(0o077)  # a strict umask must not take the execute bits away
    try:
        with runnable_by_others(wrapper) as reachable:
            result = run_as_nobody(reachable, "install", str(target))
    finally:
        os.umask(0o022)
    assert result.returncode == 0, result.stderr
    installed = target / "restart-wrapper"
    assert stat.S_IMODE(installed.stat().st_mode) == 0o755
    assert installed.stat().st_uid == NOBODY
    assert installed.read_bytes() == wrapper.read_bytes()
    assert sorted(p.name for p in target.iterdir()) == ["bin", "restart-wrapper"]  # no temporary file left
    assert run(installed, "version").returncode == 0
    # The sync tools: links to the wrapper, which the container's user (any uid) can run.
    assert stat.S_IMODE((target / "bin").stat().st_mode) == 0o755
    assert sorted(p.name for p in (target / "bin").iterdir()) == ["rm", "tar", "test"]
    for tool in ("tar", "rm", "test"):
        assert os.readlink(target / "bin" / tool) == "../restart-wrapper"


def test_install_reports_an_unwritable_directory(wrapper, world_tmp):
    with runnable_by_others(wrapper) as reachable:
        result = run_as_nobody(reachable, "install", str(world_tmp / "x"))
    assert result.returncode == 1 and "cannot create" in result.stderr


def test_privilege_dropping_works_from_an_unreadable_checkout(wrapper, tmp_path):
    """The tests above hold when the checkout is private (cloned under a 0700 /root/x)."""
    checkout = tmp_path / "private-checkout"
    checkout.mkdir(mode=0o700)
    checkout.chmod(0o700)
    hidden = checkout / wrapper.name
    shutil.copyfile(wrapper, hidden)
    hidden.chmod(0o755)
    # Control: run from where it lies, the other uid cannot even execute it.
    with pytest.raises(PermissionError):
        run_as_nobody(hidden, "version")
    with runnable_by_others(hidden) as reachable:
        result = run_as_nobody(reachable, "version")
    assert result.returncode == 0 and result.stdout.startswith("restart-wrapper "), result.stderr


def test_trigger_writes_the_restart_file(wrapper, tmp_path):
    target = tmp_path / "restart"
    assert run(wrapper, "trigger", f"--restart-file={target}").returncode == 0
    before = target.stat().st_mtime_ns
    assert target.read_text().strip().isdigit()
    assert run(wrapper, "trigger", "--restart-file", str(target)).returncode == 0
    assert target.stat().st_mtime_ns >= before
    failed = run(wrapper, "trigger", f"--restart-file={tmp_path}/missing-dir/restart")
    assert failed.returncode == 1
    assert failed.stderr == (f"restart-wrapper: trigger: cannot open {tmp_path}/missing-dir/restart: "
                             "No such file or directory\n")


def test_trigger_finds_the_file_in_the_environment(wrapper, tmp_path):
    """kubectl exec sessions inherit the container's env, where the webhook names the pod's file."""
    from_env, from_option = tmp_path / "env.restart", tmp_path / "option.restart"
    env = {**ENV, "RESTART_WRAPPER_RESTART_FILE": str(from_env)}
    assert run(wrapper, "trigger", env=env).returncode == 0
    assert from_env.read_text().strip().isdigit()
    assert run(wrapper, "trigger", f"--restart-file={from_option}", env=env).returncode == 0  # the option wins
    assert from_option.exists()
    from_env.unlink()
    missing = {**ENV, "RESTART_WRAPPER_RESTART_FILE": str(tmp_path / "no-such-dir" / "x.restart")}
    failed = run(wrapper, "trigger", env=missing)
    assert failed.returncode == 1
    assert failed.stderr == (f"restart-wrapper: trigger: cannot open {tmp_path}/no-such-dir/x.restart "
                             "(from $RESTART_WRAPPER_RESTART_FILE): No such file or directory\n")
    assert not from_env.exists()


@pytest.mark.parametrize("value, expected", [
    ("relative/x.restart", "expected an absolute path: RESTART_WRAPPER_RESTART_FILE=relative/x.restart"),
    ("/a\nb", "expected a path without control characters: RESTART_WRAPPER_RESTART_FILE=/a?b"),
    ("/" + "a" * 1024, "expected a path of at most 1024 bytes: RESTART_WRAPPER_RESTART_FILE=/aaa"),
])
def test_trigger_refuses_an_invalid_path_in_the_environment(wrapper, value, expected):
    result = run(wrapper, "trigger", env={**ENV, "RESTART_WRAPPER_RESTART_FILE": value})
    assert result.returncode == 2
    assert expected in result.stderr and len(result.stderr.splitlines()) == 1, result.stderr


def test_trigger_hints_at_the_environment_when_the_default_fails(static_wrapper, tmp_path):
    """The default /tmp/.restart-proc, in an image without /tmp: say which file, why, and what to do."""
    root = tmp_path / "root"
    root.mkdir()
    shutil.copy(static_wrapper, root / "restart-wrapper")
    for env in (ENV, {**ENV, "RESTART_WRAPPER_RESTART_FILE": ""}):  # empty counts as not set
        result = subprocess.run(["chroot", str(root), "/restart-wrapper", "trigger"], capture_output=True, text=True,
                                env=env, timeout=10)
        assert result.returncode == 1
        assert result.stderr == (
            "restart-wrapper: trigger: cannot open /tmp/.restart-proc (the default; $RESTART_WRAPPER_RESTART_FILE "
            "is not set): No such file or directory; pass --restart-file=PATH with a file the wrapper watches\n")


def test_trigger_takes_one_restart_file(wrapper, tmp_path):
    result = run(wrapper, "trigger", f"--restart-file={tmp_path}/a", f"--restart-file={tmp_path}/b")
    assert result.returncode == 2 and "only once" in result.stderr
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


ELF_MACHINE = {"amd64": 62, "arm64": 183}  # e_machine: EM_X86_64, EM_AARCH64


def test_the_release_build_is_static_and_small(static_wrapper):
    # The budget (issue 12): at most 100 KB with tar and rm in it; it is copied into every pod.
    # For every architecture the image ships (issue 18).
    assert static_wrapper.stat().st_size <= 100_000
    with open(static_wrapper, "rb") as binary:
        elf = binary.read()
    assert elf[:4] == b"\x7fELF"
    assert b".interp" not in elf and b"ld-linux" not in elf and b"ld-musl" not in elf  # no dynamic loader requested
    arch = static_wrapper.parent.name.removeprefix("linux-") if static_wrapper.parent.name.startswith("linux-") \
        else HOST_ARCH
    assert int.from_bytes(elf[18:20], "little") == ELF_MACHINE[arch], arch


def test_runs_in_a_chroot_with_nothing_but_itself(static_wrapper, tmp_path):
    """No shell, no libc, no /proc: the wrapper and one static program are the whole filesystem."""
    root = tmp_path / "root"
    root.mkdir()
    shutil.copy(static_wrapper, root / "restart-wrapper")
    shutil.copy(static_wrapper.with_name("chroot-probe"), root / "probe")  # the same architecture's
    process = subprocess.Popen(
        ["chroot", str(root), "/restart-wrapper", "run", "--restart-file=/trigger", "--", "/probe", "x"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert read_line(process.stdout).startswith("probe started")
        (root / "trigger").write_text("go")
        assert read_line(process.stdout).startswith("probe started")  # restarted inside the chroot
        # `trigger` works there too: no shell needed to write the restart file.
        assert subprocess.run(["chroot", str(root), "/restart-wrapper", "trigger", "--restart-file=/trigger"],
                              timeout=10).returncode == 0
        assert read_line(process.stdout).startswith("probe started")
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 128 + signal.SIGTERM
    assert "restarting /probe: /trigger changed" in read_rest(process.stderr)


def test_a_scratch_image_without_tmp_restarts_through_the_pod_file(static_wrapper, tmp_path):
    """What the webhook sets up in a FROM scratch image: no /tmp, an emptyDir at /run/restart-process,
    both files passed to `run`, and the env var that makes `kubectl exec … trigger` find the second."""
    root = tmp_path / "root"
    (root / "run" / "restart-process").mkdir(parents=True)
    shutil.copy(static_wrapper, root / "restart-wrapper")
    shutil.copy(static_wrapper.with_name("chroot-probe"), root / "probe")
    pod_file = "/run/restart-process/app.restart"
    env = {**ENV, "RESTART_WRAPPER_RESTART_FILE": pod_file}
    process = subprocess.Popen(
        ["chroot", str(root), "/restart-wrapper", "run", "--restart-file=/tmp/.restart-proc",
         f"--restart-file={pod_file}", "--", "/probe", "x"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        assert read_line(process.stdout).startswith("probe started")
        # Idle while /tmp/.restart-proc is anchored at "/": no CPU, no lines.
        before = cpu_ticks(process.pid)
        time.sleep(1.0)
        assert cpu_ticks(process.pid) - before == 0
        triggered = subprocess.run(["chroot", str(root), "/restart-wrapper", "trigger"], capture_output=True,
                                   text=True, env=env, timeout=10)
        assert triggered.returncode == 0, triggered.stderr
        assert read_line(process.stdout).startswith("probe started")
        # /tmp appearing later (an image that makes it at start-up) is followed down, as before.
        (root / "tmp").mkdir()
        (root / "tmp" / ".restart-proc").write_text("go")
        assert read_line(process.stdout).startswith("probe started")
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 128 + signal.SIGTERM
    stderr = without_emulator_line(read_rest(process.stderr), static_wrapper)
    assert f"restarting /probe: {pod_file} changed" in stderr
    assert "restarting /probe: /tmp/.restart-proc changed" in stderr
    assert [m["next"] for m in ends(stderr)] == [
        f"starting it again now ({pod_file} changed)",
        "starting it again now (/tmp/.restart-proc changed)",
        "exiting with status 143 (shutting down)",
    ]
    assert len(stderr.splitlines()) == 5, stderr  # two restarts, three ends: nothing else
