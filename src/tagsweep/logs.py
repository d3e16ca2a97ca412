"""Logging, configured once at start-up with structlog.

JSON lines when stdout is not a terminal (systemd/journald, CI, pipes); a readable
key-value rendering on a TTY. Modules bind context (``reader=``, ``session=``) instead of
formatting it into messages; tests capture events with ``structlog.testing.capture_logs``.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

_SECRET_KEYS = frozenset({"password", "passwd", "secret", "token", "api_key", "authorization"})


def _redact_secrets(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    """Last line of defence: never let a value under a secret-looking key reach a log."""
    for key, value in event.items():
        if key.lower() in _SECRET_KEYS and value is not None:
            event[key] = "***"
    return event


def configure_logging(*, json: bool | None = None, level: str = "info") -> None:
    """Configure structlog (and route stdlib logging through it).

    ``json=None`` picks JSON unless stdout is a TTY.
    """
    if json is None:
        json = not sys.stdout.isatty()
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact_secrets,
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty())
    )
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        # No file argument: each logger takes sys.stdout when it is created, so a
        # logger made after stdout was swapped (test capture, a daemonising wrapper)
        # never writes to a stream that has since been closed.
        logger_factory=structlog.PrintLoggerFactory(),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=max(numeric, logging.WARNING), stream=sys.stderr, force=True)


def get_logger(name: str, **context: Any) -> Any:
    """A structlog logger with ``logger=name`` and any extra context bound."""
    return structlog.get_logger().bind(logger=name, **context)
