"""Stopping the server processes the tests and benchmarks start."""

import ctypes
import signal
import subprocess


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
