"""`restart-wrapper test -d|-e|-f FILE`: what `kubectl cp` asks before copying into a directory.

kubectl copies SRC *into* DEST only when `test -d DEST` succeeds in the container; in an image
without `test` it copies *onto* DEST. Each case runs coreutils' test (the oracle) and ours, run
as `test` through a link, on the same file: the same exit status, and nothing on stderr.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from .harness import BUILDS, ENV, NO_OTHER_TOOLS, tool_argv

COREUTILS_TEST = "/usr/bin/test" if os.path.exists("/usr/bin/test") else shutil.which("test")


@pytest.fixture(params=list(BUILDS))
def ours(request, multicall):
    return tool_argv(multicall, f"{request.param}-as-test", "test")[0]


@pytest.fixture
def files(tmp_path):
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_text("x")
    (tmp_path / "link-to-dir").symlink_to("dir")
    (tmp_path / "link-to-file").symlink_to("file")
    (tmp_path / "dangling").symlink_to("nowhere")
    os.mkfifo(tmp_path / "fifo")
    return tmp_path


@pytest.mark.parametrize("test", ["-d", "-e", "-f"])
@pytest.mark.parametrize("name", ["dir", "file", "link-to-dir", "link-to-file", "dangling", "fifo", "missing",
                                  "file/below-a-file", "dir/"])
def test_the_same_answer_as_coreutils(ours, files, test, name):
    path = str(files / name) + ("/" if name.endswith("/") else "")
    expected = subprocess.run([COREUTILS_TEST, test, path], capture_output=True, env=ENV, timeout=10)
    got = subprocess.run([ours, test, path], capture_output=True, env=ENV, timeout=10)
    assert (got.returncode, got.stderr) == (expected.returncode, b""), (test, name, got)
    assert expected.returncode in (0, 1)


def test_kubectls_question_gets_both_answers(ours, files):
    """The one kubectl asks: true for a directory, false for a file (which the oracle test would
    also pass if every answer were the same)."""
    answers = [subprocess.run([ours, "-d", str(files / name)], env=ENV, timeout=10).returncode for name in ("dir", "file")]
    assert answers == [0, 1]


@pytest.mark.parametrize("argv", [[], ["-d"], ["-n", "x"], ["x", "=", "x"], ["-d", "a", "b"], ["-z", "/"]])
def test_the_rest_of_tests_language_is_refused_never_answered(ours, argv):
    """Status 2 and one line, rather than an answer that could be wrong."""
    result = subprocess.run([ours, *argv], capture_output=True, text=True, env=NO_OTHER_TOOLS, timeout=10)
    assert result.returncode == 2 and result.stderr == "test: expected -d, -e or -f FILE\n", result
