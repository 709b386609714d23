"""Stopping the server processes the tests and benchmarks start, and reading children's output with a deadline."""

import ctypes
import signal
import subprocess
import threading


def die_with_parent() -> None:
    """preexec_fn: SIGKILL this process when the test run that started it dies, even by SIGKILL
    (PR_SET_PDEATHSIG), so a killed run leaves no server behind."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def stop(process: subprocess.Popen, timeout: float = 10.0) -> bool:
    """SIGTERM, then SIGKILL if it is still there after `timeout` seconds, so nothing is left
    running. True when it exited by itself."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
        return True
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return False


def read_line(stream, timeout: float = 10.0, what: str = "a line"):
    """`stream.readline()` from a child's pipe, with a deadline: a child that never writes the line
    (a regression that hangs) fails the test after `timeout` seconds instead of blocking it forever.
    The reading thread is left behind on failure; it ends when the test's cleanup ends the child."""
    return _with_deadline(stream.readline, timeout, what)


def read_rest(stream, timeout: float = 10.0, what: str = "the rest of the output"):
    """`stream.read()` (until end of file) from a child's pipe, with a deadline, as `read_line`."""
    return _with_deadline(stream.read, timeout, what)


def _with_deadline(read, timeout: float, what: str):
    result: list = []
    failure: list = []

    def run():
        try:
            result.append(read())
        except BaseException as error:  # handed to the test's thread
            failure.append(error)

    reader = threading.Thread(target=run, daemon=True)
    reader.start()
    reader.join(timeout)
    if reader.is_alive():
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")
    if failure:
        raise failure[0]
    return result[0]
