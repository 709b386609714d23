"""Stopping the server processes the tests and benchmarks start."""

import signal
import subprocess


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
