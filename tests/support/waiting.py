"""Waiting for something to become true, with a deadline that names what was awaited."""

from __future__ import annotations

import subprocess
import time


def wait_until(condition, timeout: float = 10.0, interval: float = 0.01, what: str = "condition",
               ignoring: tuple[type[BaseException], ...] = (), process: subprocess.Popen | None = None):
    """Call `condition` until it returns something truthy, and return that.

    An exception listed in `ignoring` counts as "not yet" (a server still starting), and the last
    one is named at the deadline; a `process` that exits meanwhile fails at once instead.
    """
    deadline = time.monotonic() + timeout
    last_error = None
    while True:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"{process.args[0]} exited with {process.returncode} while waiting for {what}")
        try:
            value = condition()
        except ignoring as error:
            value, last_error = None, error
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}"
                                 + (f"; last error: {last_error}" if last_error else ""))
        time.sleep(interval)
