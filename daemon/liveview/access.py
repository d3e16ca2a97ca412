"""Who may use the live view: the token, browser sessions, and what never reaches a log.

With a token configured, a request is let in with ``Authorization: Bearer <token>`` or a
browser-session cookie. Opening a page once as ``/?token=…`` creates the session: a
random id (never the token) kept here with its expiry, sent as the ``tagsweep_session``
cookie (HttpOnly, SameSite=Strict, Secure under TLS, :data:`SESSION_TTL_S`), with a
redirect to the clean URL so the token leaves the address bar. The API takes the token
only in the header. ``Authorization`` and ``Cookie`` values that are not UTF-8 are
refused (400) before anything reads them.

The HTTP library logs request lines it refuses (too long, malformed), and those can carry
``?token=``: :func:`install_redaction` puts a filter on its loggers that replaces every
``token=`` value, and drops the traceback that would quote the line again.
"""

from __future__ import annotations

import hmac
import logging
import re
import secrets
import time
from typing import Final

from aiohttp import web

SESSION_COOKIE: Final = "tagsweep_session"
#: How long a browser session opened with ``?token=`` lasts.
SESSION_TTL_S: Final = 12 * 3600
#: Browser sessions kept at most; the oldest is forgotten first.
MAX_SESSIONS: Final = 1024
#: Seconds a client has to send complete request headers (and to keep an idle connection).
HEADER_TIMEOUT_S: Final = 15.0

_TOKEN_VALUE = re.compile(r"(?i)(token=)[^&\s\"']*")


def redact(text: str) -> str:
    """``token=…`` values in a URL or request line, replaced by ``***``."""
    return _TOKEN_VALUE.sub(r"\1***", text)


class _RedactTokens(logging.Filter):
    """On the HTTP library's loggers: its error lines quote request lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            message += f": {record.exc_info[1]}"
            record.exc_info = None  # the traceback would quote the line again
            record.exc_text = None
        record.msg, record.args = redact(message), None
        return True


def install_redaction() -> None:
    """Redact ``token=`` values on the HTTP library's loggers (once per process)."""
    for name in ("aiohttp.server", "aiohttp.access", "aiohttp.web", "aiohttp.internal"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _RedactTokens) for f in logger.filters):
            logger.addFilter(_RedactTokens())


def utf8(value: str) -> bool:
    """Header values arrive decoded with surrogate escapes: those were not UTF-8."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class WebAccess:
    """The token check and the browser sessions of one live view server."""

    def __init__(self, token: str | None) -> None:
        self._token = token.encode() if token else None
        self._sessions: dict[str, float] = {}  # browser session id -> expiry (monotonic)

    @property
    def required(self) -> bool:
        return self._token is not None

    def token_ok(self, candidate: str | None) -> bool:
        return (
            self._token is not None
            and candidate is not None
            and hmac.compare_digest(candidate.encode(), self._token)
        )

    def new_session(self) -> str:
        now = time.monotonic()
        for sid in [k for k, expiry in self._sessions.items() if expiry <= now]:
            del self._sessions[sid]
        while len(self._sessions) >= MAX_SESSIONS:
            del self._sessions[next(iter(self._sessions))]  # the oldest
        sid = secrets.token_urlsafe(32)
        self._sessions[sid] = now + SESSION_TTL_S
        return sid

    def session_ok(self, sid: str | None) -> bool:
        if not sid:
            return False
        expiry = self._sessions.get(sid)
        if expiry is None:
            return False
        if expiry <= time.monotonic():
            del self._sessions[sid]
            return False
        return True

    def expire_all(self) -> None:
        """End every browser session now (the token changed, or a test)."""
        for sid in self._sessions:
            self._sessions[sid] = 0.0

    def check(self, request: web.Request) -> web.Response | tuple[int, str] | None:
        """None to let the request in; a redirect that opens a browser session; or the
        (status, message) to refuse it with."""
        for name in ("Authorization", "Cookie"):
            for value in request.headers.getall(name, ()):
                if not utf8(value):
                    return 400, f"the {name} header is not UTF-8 text"
        if self._token is None or request.path.startswith("/static/"):
            return None
        header = request.headers.get("Authorization", "")
        bearer = header[7:].strip() if header.lower().startswith("bearer ") else None
        if self.token_ok(bearer) or self.session_ok(request.cookies.get(SESSION_COOKIE)):
            return None
        query_token = request.query.get("token")
        if query_token is not None and not utf8(query_token):
            return 400, "the token parameter is not UTF-8 text"
        if self.token_ok(query_token) and not request.path.startswith("/api/"):
            clean = request.rel_url.with_query(
                [(k, v) for k, v in request.query.items() if k != "token"]
            )
            response = web.Response(status=303, headers={"Location": str(clean)})
            response.set_cookie(
                SESSION_COOKIE,
                self.new_session(),
                httponly=True,
                samesite="Strict",
                secure=request.secure,
                max_age=SESSION_TTL_S,
                path="/",
            )
            return response
        given = bearer is not None or query_token is not None or SESSION_COOKIE in request.cookies
        if given:
            return 401, "the token does not match this gateway's [web] token"
        return 401, (
            "this live view needs a token: send 'Authorization: Bearer <token>' "
            "or open the page once as /?token=<token>"
        )
