"""--env-file: variables added to COMMAND's environment, read again before every start."""

import json
import os
import signal
import subprocess
import time

import pytest

from tests.support.processes import read_rest
from .harness import ENV, Wrapper, wait_until

PREFIX = "RWTEST_"


def environments(w: Wrapper) -> list[dict]:
    """What each start of an `env` child saw, in order."""
    if not w.log.exists():
        return []
    return [json.loads(l[4:]) for l in w.log.read_text().splitlines() if l.startswith("env ")]


def wait_environments(w: Wrapper, n: int) -> list[dict]:
    return wait_until(lambda: len(environments(w)) >= n and environments(w), what=f"{n} environments")


def start(wrapper, tmp_path, env_file, prefixes=PREFIX, env=None) -> Wrapper:
    return Wrapper(wrapper, tmp_path, "env", prefixes, options=[f"--env-file={env_file}"], env=env)


def sync(path, text: str) -> None:
    """Replace the file the way a sync does: a new file renamed over the old one."""
    temporary = path.with_name(path.name + ".sync")
    temporary.write_bytes(text.encode() if isinstance(text, str) else text)
    os.replace(temporary, path)


def test_a_synced_env_file_is_read_again_at_the_next_start(wrapper, tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("RWTEST_A=1\nRWTEST_B=two words\nRWTEST_INHERITED=from the file\n")
    w = start(wrapper, tmp_path, env_file, env={"RWTEST_INHERITED": "from the wrapper", "RWTEST_KEPT": "k"})
    try:
        assert wait_environments(w, 1)[0] == {
            "RWTEST_A": "1", "RWTEST_B": "two words", "RWTEST_INHERITED": "from the file", "RWTEST_KEPT": "k"}
        sync(env_file, "RWTEST_A=changed\n")  # B and the override are gone from the file
        w.restart_file.write_text("go")
        # The override is gone too: the wrapper's own value is back, nothing piled up across starts.
        assert wait_environments(w, 2)[1] == {
            "RWTEST_A": "changed", "RWTEST_INHERITED": "from the wrapper", "RWTEST_KEPT": "k"}
        assert str(env_file) not in w.stderr()  # nothing to report about a good file
    finally:
        w.stop()


def test_a_rerun_reads_the_file_again(wrapper, tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("RWTEST_RUN=first\n")
    w = Wrapper(wrapper, tmp_path, "env", PREFIX, "3", options=[f"--env-file={env_file}"])  # prints, exits 3
    try:
        assert wait_environments(w, 1)[0] == {"RWTEST_RUN": "first"}
        sync(env_file, "RWTEST_RUN=second\n")  # within the 1s the default rerun policy waits
        assert wait_environments(w, 2)[1] == {"RWTEST_RUN": "second"}
    finally:
        w.stop()


def test_the_format(wrapper, tmp_path):
    env_file = tmp_path / ".env"
    sync(env_file, (
        "# a comment\n"
        "   # an indented comment\n"
        "\n"
        "   \t\n"
        "RWTEST_PLAIN=plain\n"
        "export RWTEST_EXPORTED=1\n"
        "export \t RWTEST_EXPORTED_BLANKS=2\n"
        "  RWTEST_INDENTED=3\n"
        "RWTEST_EQUALS=a=b=c\n"
        'RWTEST_DOUBLE="double quoted"\n'
        "RWTEST_SINGLE='single quoted'\n"
        "RWTEST_MISMATCHED=\"a'\n"
        'RWTEST_ONE_QUOTE="\n'
        'RWTEST_INNER="a"b"\n'
        'RWTEST_NOT_ESCAPED="a\\nb"\n'
        "RWTEST_EMPTY=\n"
        'RWTEST_EMPTY_QUOTES=""\n'
        "RWTEST_CRLF=windows\r\n"
        "RWTEST_PADDED=  padded  \n"
        "RWTEST_HASH=a # not a comment\n"
        "# RWTEST_COMMENTED=1\n"
        "RWTEST_UTF8=é\n"
        "RWTEST_DUP=first\n"
        "RWTEST_DUP=last\n"
        "exportRWTEST_=glued\n"
        "export=a variable named export\n"
        "RWTEST_NO_NEWLINE=at the end"
    ))
    w = start(wrapper, tmp_path, env_file, prefixes="RWTEST_,export")
    try:
        assert wait_environments(w, 1)[0] == {
            "RWTEST_PLAIN": "plain",
            "RWTEST_EXPORTED": "1",
            "RWTEST_EXPORTED_BLANKS": "2",
            "RWTEST_INDENTED": "3",
            "RWTEST_EQUALS": "a=b=c",
            "RWTEST_DOUBLE": "double quoted",
            "RWTEST_SINGLE": "single quoted",
            "RWTEST_MISMATCHED": "\"a'",
            "RWTEST_ONE_QUOTE": '"',
            "RWTEST_INNER": 'a"b',
            "RWTEST_NOT_ESCAPED": "a\\nb",
            "RWTEST_EMPTY": "",
            "RWTEST_EMPTY_QUOTES": "",
            "RWTEST_CRLF": "windows",
            "RWTEST_PADDED": "  padded  ",
            "RWTEST_HASH": "a # not a comment",
            "RWTEST_UTF8": "é",
            "RWTEST_DUP": "last",
            "exportRWTEST_": "glued",
            "export": "a variable named export",
            "RWTEST_NO_NEWLINE": "at the end",
        }
        assert w.stderr() == ""  # every line was fine
    finally:
        w.stop()


def test_malformed_lines_are_reported_by_number_and_the_rest_is_used(wrapper, tmp_path):
    env_file = tmp_path / ".env"
    sync(env_file, b"RWTEST_OK=1\n1BAD=secret\nno equals sign\nRWTEST_SP ACE=secret\n=secret\nexport\n"
                   b"RWTEST-DASH=secret\nexport RWTEST_X\nRWTEST_NUL=a\0b\nRWTEST_LAST=ok\n")
    w = start(wrapper, tmp_path, env_file)
    try:
        assert wait_environments(w, 1)[0] == {"RWTEST_OK": "1", "RWTEST_LAST": "ok"}
        name = "the name before '=' must match [A-Za-z_][A-Za-z0-9_]*"
        assert w.stderr().splitlines() == [
            f"restart-wrapper: {env_file}:2: {name}; line ignored",
            f"restart-wrapper: {env_file}:3: expected KEY=VALUE; line ignored",
            f"restart-wrapper: {env_file}:4: {name}; line ignored",
            f"restart-wrapper: {env_file}:5: {name}; line ignored",
            f"restart-wrapper: {env_file}:6: expected KEY=VALUE; line ignored",
            f"restart-wrapper: {env_file}:7: {name}; line ignored",
            f"restart-wrapper: {env_file}:8: expected KEY=VALUE; line ignored",
            f"restart-wrapper: {env_file}:9: contains a NUL byte; line ignored",
        ]
        assert "secret" not in w.stderr()  # a value is never echoed: env files hold secrets
    finally:
        w.stop()


def test_a_missing_env_file_is_fine_and_is_read_once_it_appears(wrapper, tmp_path):
    env_file = tmp_path / "config" / ".env"
    w = start(wrapper, tmp_path, env_file)
    try:
        assert wait_environments(w, 1)[0] == {}
        time.sleep(0.2)
        assert w.stderr() == ""  # quiet: no file, nothing to say
        env_file.parent.mkdir()
        env_file.write_text("RWTEST_LATER=1\n")
        w.restart_file.write_text("go")
        assert wait_environments(w, 2)[1] == {"RWTEST_LATER": "1"}
    finally:
        w.stop()


def test_an_unreadable_env_file_is_reported_and_the_program_still_starts(wrapper, tmp_path):
    env_file = tmp_path / "a-directory"
    env_file.mkdir()
    w = start(wrapper, tmp_path, env_file, env={"RWTEST_OWN": "kept"})
    try:
        assert wait_environments(w, 1)[0] == {"RWTEST_OWN": "kept"}
        assert w.stderr() == f"restart-wrapper: {env_file}: cannot read: Is a directory; starting without it\n"
    finally:
        w.stop()


MIB = 1024 * 1024


@pytest.mark.parametrize("size, read", [(MIB, True), (MIB + 1, False)])
def test_the_file_size_cap(wrapper, tmp_path, size, read):
    env_file = tmp_path / ".env"
    first = b"RWTEST_SIZED=yes\n"
    filler = b"#" * (size - len(first) - 1) + b"\n"
    sync(env_file, first + filler)
    assert env_file.stat().st_size == size
    w = start(wrapper, tmp_path, env_file)
    try:
        assert wait_environments(w, 1)[0] == ({"RWTEST_SIZED": "yes"} if read else {})
        assert w.stderr() == ("" if read else f"restart-wrapper: {env_file}: larger than 1 MiB; starting without it\n")
    finally:
        w.stop()


def test_the_line_length_cap(wrapper, tmp_path):
    env_file = tmp_path / ".env"
    longest = b"RWTEST_LONGEST=" + b"x" * (65536 - len(b"RWTEST_LONGEST="))
    too_long = b"RWTEST_TOO_LONG=" + b"x" * (65537 - len(b"RWTEST_TOO_LONG="))
    assert len(longest) == 65536 and len(too_long) == 65537
    sync(env_file, longest + b"\n" + too_long + b"\nRWTEST_AFTER=1\n")
    w = start(wrapper, tmp_path, env_file)
    try:
        seen = wait_environments(w, 1)[0]
        assert sorted(seen) == ["RWTEST_AFTER", "RWTEST_LONGEST"] and len(seen["RWTEST_LONGEST"]) == 65536 - 15
        assert w.stderr() == f"restart-wrapper: {env_file}:2: longer than 64 KiB; line ignored\n"
    finally:
        w.stop()


def test_the_variable_count_cap(wrapper, tmp_path):
    env_file = tmp_path / ".env"
    sync(env_file, "".join(f"RWTEST_{i}={i}\n" for i in range(4097)) + "RWTEST_AFTER=1\n")
    w = start(wrapper, tmp_path, env_file)
    try:
        seen = wait_environments(w, 1)[0]
        assert len(seen) == 4096 and "RWTEST_4095" in seen and "RWTEST_4096" not in seen
        assert w.stderr() == (f"restart-wrapper: {env_file}:4097: more than 4096 variables; "
                              "this line and the rest ignored\n")
    finally:
        w.stop()


def test_a_path_from_the_env_file_finds_the_program(wrapper, tmp_path):
    """execvp looks COMMAND up in the environment it passes on, as `env PATH=… COMMAND` does."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    marker = tmp_path / "ran"
    (bin_dir / "only-here").write_text(f"#!/bin/sh\ntouch {marker}\nexec sleep 1000\n")
    (bin_dir / "only-here").chmod(0o755)
    env_file = tmp_path / ".env"
    env_file.write_text(f"PATH={bin_dir}:/usr/bin:/bin\n")
    process = subprocess.Popen([str(wrapper), "run", f"--restart-file={tmp_path / 'r'}", f"--env-file={env_file}",
                                "--", "only-here"], env=ENV, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(marker.exists, what="the program found through the file's PATH")
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 128 + signal.SIGTERM
    assert "cannot run" not in read_rest(process.stderr)
