"""A small asynchronous client for NetBox's REST API.

Authentication (NetBox REST API documentation, "Authentication"): a legacy v1 token is
sent as ``Authorization: Token <40 hex characters>``; a v2 token (NetBox 4.5 and later)
is ``nbt_<key>.<secret>`` and is sent as ``Authorization: Bearer nbt_<key>.<secret>``.
The token comes from a file or the environment and is never logged or printed.

Requests are bounded by a semaphore (``concurrency``); 429 and 5xx answers and refused
connections are retried with exponential backoff (``Retry-After`` is honoured on 429).
A POST is repeated only when it surely was not applied (refused connection, 429, 503):
after a time-out it may have been, and repeating it would create objects twice.
401, 403 and 404 become :class:`NetBoxError` subclasses with a sentence saying what to
check. Once the server has stayed unreachable through every retry, later requests fail
at once (:class:`NetBoxUnavailableError`) instead of each waiting through its own retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import structlog

log = structlog.get_logger(__name__)

TOKEN_ENV: Final = "NETBOX_TOKEN"
V2_PREFIX: Final = "nbt_"
#: NetBox's default MAX_PAGE_SIZE; a larger ``limit`` is cut to it by the server.
PAGE_SIZE: Final = 1000
RETRY_STATUSES: Final = frozenset({429, 500, 502, 503, 504})
#: Answers that say the request was not applied, so even a POST may be sent again.
NOT_APPLIED_STATUSES: Final = frozenset({429, 503})


class NetBoxError(Exception):
    """A NetBox request failed; ``status`` is the HTTP status (0: no answer)."""

    def __init__(self, message: str, *, status: int = 0, url: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.url = url


class NetBoxAuthError(NetBoxError):
    """401 (token unknown, expired or malformed) or 403 (token lacks a permission)."""


class NetBoxNotFoundError(NetBoxError):
    """404: the object or the endpoint does not exist (a plugin not installed)."""


class NetBoxUnavailableError(NetBoxError):
    """No answer, or 429/5xx after every retry."""


class TokenError(ValueError):
    """No usable token was given."""


def load_token(token_file: Path | None, env: Mapping[str, str] | None = None) -> str:
    """The API token from ``token_file`` (first line) or ``$NETBOX_TOKEN``.

    Never taken from the command line, where it would land in shell history and ``ps``.
    """
    environ = os.environ if env is None else env
    if token_file is not None:
        try:
            text = token_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise TokenError(f"--token-file {token_file}: {exc.strerror}") from None
        token = text.strip().splitlines()[0].strip() if text.strip() else ""
        if not token:
            raise TokenError(f"--token-file {token_file}: the file is empty")
        return token
    token = environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise TokenError(
            f"no NetBox API token: pass --token-file FILE or set {TOKEN_ENV} "
            "(never on the command line)"
        )
    return token


def authorization(token: str) -> str:
    """The ``Authorization`` header value for a v1 or a v2 token."""
    if token.startswith(V2_PREFIX):
        return f"Bearer {token}"
    return f"Token {token}"


def api_root(url: str) -> str:
    """``https://host[/prefix]/api/`` from a NetBox URL given with or without ``/api``
    (query and fragment dropped: they are filters, see :func:`split_filters`)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{url!r} is not an http(s) URL of a NetBox server")
    path = parts.path.rstrip("/")
    if path.endswith("/api"):
        path = path[: -len("/api")]
    for suffix in ("/api/dcim/devices", "/dcim/devices"):
        if path.endswith(suffix):
            path = path[: -len(suffix)]
    return urlunsplit((parts.scheme, parts.netloc, path + "/api/", "", ""))


def _describe(status: int, method: str, url: str, body: str) -> NetBoxError:
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None  # an HTML error page says nothing a person needs here
    if isinstance(parsed, Mapping) and "detail" in parsed:
        detail = str(parsed["detail"])
        if len(parsed) > 1:  # bulk answers add which objects failed and why
            rest = {k: v for k, v in parsed.items() if k != "detail"}
            detail += " " + json.dumps(rest)[:500]
    elif parsed is not None:
        detail = json.dumps(parsed)[:500]  # a validation error: which field, why
    else:
        detail = "no JSON in the answer"
    where = f"{method} {url}"
    low = detail.lower()
    token_refused = status == 401 or (
        status == 403 and "token" in low and any(w in low for w in ("invalid", "expired"))
    )
    if token_refused:
        # NetBox answers 403 "Invalid v1 token" / "Invalid v2 token" for a wrong token
        return NetBoxAuthError(
            f"{where}: HTTP {status} ({detail}); NetBox does not accept this token: check it "
            "is the whole token (v1: 40 hex characters; v2: nbt_<key>.<secret>) and is "
            "neither expired nor disabled",
            status=status,
            url=url,
        )
    if status == 403:
        return NetBoxAuthError(
            f"{where}: 403 forbidden ({detail}); the token's user lacks this permission, "
            "or the token is read-only (enable 'write enabled' for a push)",
            status=status,
            url=url,
        )
    if status == 404:
        return NetBoxNotFoundError(
            f"{where}: 404 not found ({detail}); check the URL (NetBox's, with its base "
            "path) and that the object still exists",
            status=status,
            url=url,
        )
    return NetBoxError(f"{where}: HTTP {status}: {detail}", status=status, url=url)


@dataclass(slots=True)
class NetBoxClient:
    """``async with NetBoxClient(url, token) as nb: await nb.get("dcim/devices/")``."""

    url: str
    token: str = field(repr=False)
    concurrency: int = 8
    retries: int = 4
    backoff_s: float = 0.5
    timeout_s: float = 600.0  # a bulk request of 100 objects on a busy NetBox
    root: str = field(init=False)
    requests: int = field(init=False, default=0)
    retried: int = field(init=False, default=0)
    _session: aiohttp.ClientSession | None = field(init=False, default=None)
    _limit: asyncio.Semaphore = field(init=False)
    _down: str | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.root = api_root(self.url)
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")

    async def __aenter__(self) -> NetBoxClient:
        self._limit = asyncio.Semaphore(self.concurrency)
        self._session = aiohttp.ClientSession(
            headers={
                "Authorization": authorization(self.token),
                "Accept": "application/json",
            },
            timeout=aiohttp.ClientTimeout(total=self.timeout_s),
            connector=aiohttp.TCPConnector(limit=self.concurrency),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def endpoint(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else self.root + path.lstrip("/")

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Sequence[tuple[str, str]] | Mapping[str, str] | None = None,
        body: Any = None,
    ) -> tuple[int, bytes]:
        """Send one request; returns (status, raw body) of a 2xx answer, raises otherwise."""
        if self._session is None:
            raise RuntimeError("use the client as 'async with NetBoxClient(...)'")
        url = self.endpoint(path)
        if self._down is not None:
            raise NetBoxUnavailableError(
                f"{method} {url}: not sent, the server stopped answering ({self._down})",
                url=url,
            )
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else None
        attempt = 0
        while True:
            attempt += 1
            try:
                async with (
                    self._limit,
                    self._session.request(
                        method,
                        url,
                        params=params,
                        data=data,
                        headers=headers,
                        allow_redirects=False,
                    ) as resp,
                ):
                    self.requests += 1
                    raw = await resp.read()
                    status = resp.status
                    retry_after = resp.headers.get("Retry-After")
                    location = resp.headers.get("Location")
            except (aiohttp.ClientConnectionError, TimeoutError, OSError) as exc:
                reason = f"{type(exc).__name__}: {exc}"
                if method == "POST" and not isinstance(exc, aiohttp.ClientConnectorError):
                    # it may have been applied: a second POST would create it twice
                    raise NetBoxUnavailableError(
                        f"{method} {url}: no answer ({reason}); not repeated, as NetBox may "
                        "have applied it (the next push checks what is there)",
                        url=url,
                    ) from None
                if attempt > self.retries or self._down is not None:
                    self._down = self._down or reason
                    raise NetBoxUnavailableError(
                        f"{method} {url}: no answer after {attempt} attempt(s) ({reason})",
                        url=url,
                    ) from None
                await self._pause(attempt, None)
                continue
            if 200 <= status < 300:
                return status, raw
            if 300 <= status < 400:
                raise NetBoxError(
                    f"{method} {url}: redirected to {location or '?'} (HTTP {status}); "
                    "this is not NetBox's REST API, check the URL",
                    status=status,
                    url=url,
                )
            if (
                status in RETRY_STATUSES
                and attempt <= self.retries
                and (method != "POST" or status in NOT_APPLIED_STATUSES)
            ):
                log.info("netbox_retry", method=method, url=url, status=status, attempt=attempt)
                await self._pause(attempt, retry_after)
                continue
            error = _describe(status, method, url, raw.decode("utf-8", "replace"))
            if status in RETRY_STATUSES:
                raise NetBoxUnavailableError(str(error), status=status, url=url)
            raise error

    async def _pause(self, attempt: int, retry_after: str | None) -> None:
        self.retried += 1
        delay = self.backoff_s * (2 ** (attempt - 1)) * (0.5 + random.random())  # noqa: S311 - retry jitter, not a secret
        if retry_after is not None:
            with contextlib.suppress(ValueError):
                delay = max(delay, min(float(retry_after), 60.0))
        await asyncio.sleep(delay)

    def _json(self, method: str, path: str, raw: bytes) -> Any:
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            raise NetBoxError(
                f"{method} {self.endpoint(path)}: the answer is not JSON ({raw[:60]!r}); "
                "this is not NetBox's REST API, check the URL"
            ) from None

    async def get(
        self, path: str, params: Sequence[tuple[str, str]] | Mapping[str, str] | None = None
    ) -> Any:
        _, raw = await self.request("GET", path, params=params)
        return self._json("GET", path, raw)

    async def send(self, method: str, path: str, body: Any) -> Any:
        _, raw = await self.request(method, path, body=body)
        return self._json(method, path, raw)

    async def pages(
        self, path: str, params: Sequence[tuple[str, str]] = (), *, page_size: int = PAGE_SIZE
    ) -> list[dict[str, Any]]:
        """Every page of a list endpoint, in order of ``id``: the first page says how
        many there are, the rest are fetched concurrently by offset."""
        base = [(k, v) for k, v in params if k not in ("limit", "offset", "ordering")]
        base += [("ordering", "id"), ("limit", str(page_size))]
        first = await self.get(path, [*base, ("offset", "0")])
        if not isinstance(first, dict) or "results" not in first:
            raise NetBoxError(f"GET {self.endpoint(path)}: not a NetBox list answer")
        count = int(first.get("count") or 0)
        size = max(len(first["results"]), 1)
        offsets = range(size, count, size)
        rest = await asyncio.gather(
            *(self.get(path, [*base, ("offset", str(off))]) for off in offsets)
        )
        return [first, *rest]

    async def all(self, path: str, params: Sequence[tuple[str, str]] = ()) -> list[dict[str, Any]]:
        """Every record of a list endpoint (one per ``id``)."""
        seen: dict[int, dict[str, Any]] = {}
        for page in await self.pages(path, params):
            for record in page.get("results", []):
                seen.setdefault(int(record["id"]), record)
        return list(seen.values())
