"""Log lines: Parley's and uvicorn's in one format, text or JSON (``PARLEY_LOG_FORMAT``).

:func:`logging_config` is a :func:`logging.config.dictConfig` dictionary.
``parley`` applies it in its own process, and ``parley serve`` passes it to
uvicorn as ``log_config``, which applies it in every worker process it starts
(without it, workers would log only uvicorn's lines, in uvicorn's format).

JSON lines carry the ids of :mod:`parley.observability.context` that are
known (request, user, conversation, reply), the trace and span ids when a
span is recording, and the process id (one per worker). Neither format logs
what users or models wrote: Parley's own messages never include it, and
query strings are cut from uvicorn's request lines, since a client may put a
token there even though Parley never reads one from a URL.
"""

from __future__ import annotations

import json
import logging
import logging.config
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from parley.observability import context

try:  # the API only: it says which span is current, if any
    from opentelemetry import trace as otel_trace
except ImportError:  # pragma: no cover - the API comes with Parley's MCP dependency
    otel_trace = None  # type: ignore[assignment]

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Debug lines from the HTTP client (aiohttp) and the embedded Postgres's
# start-up chatter drown out what an operator needs to see. The MCP SDK's
# HTTP client (httpx2) logs every request's URL, which may carry a token.
NOISY_LOGGERS = ("aiohttp", "pgserver", "httpx2")


def logging_config(log_format: LogFormat, level: str) -> dict[str, Any]:
    formatter = JsonFormatter if log_format == "json" else TextFormatter
    level_number = logging.getLevelName(level.upper())
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"parley": {"()": f"{__name__}.{formatter.__name__}"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "parley",
            }
        },
        "root": {"level": level_number, "handlers": ["stderr"]},
        "loggers": {
            # uvicorn's loggers lose their own handlers and formats: their
            # lines reach the root's handler like everyone else's.
            "uvicorn": {"level": level_number, "handlers": [], "propagate": True},
            "uvicorn.error": {"level": level_number, "handlers": [], "propagate": True},
            "uvicorn.access": {"level": level_number, "handlers": [], "propagate": True},
            **{name: {"level": max(logging.WARNING, level_number)} for name in NOISY_LOGGERS},
        },
    }


def configure_logging(log_format: LogFormat, level: str) -> None:
    logging.config.dictConfig(logging_config(log_format, level))


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message [ids]``, for Parley's lines and uvicorn's alike."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        return super().format(_without_queries(record))

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        ids = _ids()
        if not ids:
            return line
        # (uvicorn ends some messages with a newline: the ids stay on the line.)
        return f"{line.rstrip()} [{' '.join(f'{name}={value}' for name, value in ids.items())}]"


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        record = _without_queries(record)
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        if record.name == "uvicorn.access":
            entry.update(_access_fields(record))
        entry.update(_ids())
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def _ids() -> dict[str, str]:
    ids = dict(context.current())
    if otel_trace is not None:
        span = otel_trace.get_current_span().get_span_context()
        if span.is_valid:
            ids["trace_id"] = format(span.trace_id, "032x")
            ids["span_id"] = format(span.span_id, "016x")
    return ids


def _access_fields(record: logging.LogRecord) -> Mapping[str, Any]:
    """uvicorn's access line as fields: ``'%s - "%s %s HTTP/%s" %d'`` with
    (client, method, path, HTTP version, status)."""
    args = record.args
    if not (isinstance(args, tuple) and len(args) == 5):
        return {}
    client, method, path, version, status = args
    return {
        "client.address": client,
        "http.request.method": method,
        "url.path": path,
        "network.protocol.version": version,
        "http.response.status_code": status,
    }


def _without_queries(record: logging.LogRecord) -> logging.LogRecord:
    """uvicorn's request lines without their query strings (a copy; others as they are)."""
    if not record.name.startswith("uvicorn") or not isinstance(record.args, tuple):
        return record
    args = tuple(
        arg.partition("?")[0] if isinstance(arg, str) and arg.startswith("/") else arg
        for arg in record.args
    )
    if args == record.args:
        return record
    copy = logging.makeLogRecord(record.__dict__)
    copy.args = args
    return copy
