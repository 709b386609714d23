"""One JSON object per log line, so admissions can be queried by field.

Everything goes through `logging` with `JsonFormatter`, except the line every admission writes:
the logging module's per-record machinery (handlers, filters, locks) cost a quarter of an
admission, so `admission_line` writes that one straight to standard error, in the same format,
whenever the logger would have written it at INFO.
"""

from __future__ import annotations

import logging
import sys
import time

import orjson


class _Clock:
    """ISO timestamps with milliseconds, the seconds part formatted once per second."""

    def __init__(self):
        self._second = -1
        self._stamp = ""

    def stamp(self, created: float) -> str:
        second = int(created)
        if second != self._second:
            self._second, self._stamp = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._stamp}.{int((created - second) * 1000):03d}Z"


_clock = _Clock()


def _line(created: float, level: str, logger: str, message: str, fields: dict) -> dict:
    return {"time": _clock.stamp(created), "level": level, "logger": logger, "msg": message, **fields}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = _line(record.created, record.levelname.lower(), record.name, record.getMessage(),
                     getattr(record, "fields", {}))
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def admission_line(logger: logging.Logger, message: str, fields: dict) -> None:
    """What `logger.info(message, extra={"fields": fields})` would write, without the machinery."""
    if logger.isEnabledFor(logging.INFO):
        line = orjson.dumps(_line(time.time(), "info", logger.name, message, fields), default=str,
                            option=orjson.OPT_APPEND_NEWLINE)
        # Bytes straight to the binary layer: the handlers flush the text layer after every
        # record, so nothing of theirs is waiting there to be overtaken.
        stream = sys.stderr.buffer
        stream.write(line)
        stream.flush()


def configure(level: str) -> None:
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
