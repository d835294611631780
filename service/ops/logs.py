"""Logging configuration: every log record (uvicorn's, the service's) as one JSON line on stdout."""

from __future__ import annotations

import logging
from typing import Any

import msgspec


def logging_config(level: str) -> dict[str, Any]:
    """logging.config for uvicorn.run: JSON lines on stdout; uvicorn's own access log stays off.

    The access log does not go through `logging` at all (see `access_log.py`).
    """
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"stdout": handler},
        "loggers": {
            "service": {"handlers": ["stdout"], "level": level.upper(), "propagate": False},
            "uvicorn": {"handlers": ["stdout"], "level": level.upper(), "propagate": False},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }


class JsonFormatter(logging.Formatter):
    """Every log record as one JSON object per line; a record's `fields` extra is merged in."""

    _encode = msgspec.json.Encoder().encode

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": round(record.created, 6),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(getattr(record, "fields", {}))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return self._encode(line).decode()
