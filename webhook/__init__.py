"""restart-process-webhook: re-execute a container's process when synced files change."""

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("restart-process-webhook")
except _metadata.PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
