"""``tagsweep session progress``: the live count in a terminal.

The same question as the live page — what should be here that I have not seen yet? —
for someone with a laptop and no browser, or a script. The data is the live view's
snapshot (expected, seen, not yet seen, unexpected per location, reader health), read
from the running daemon over its control socket (which is always there, web page or
not), or with ``--url`` from the live view's JSON API, e.g. on another machine.
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table


class ProgressUnavailableError(RuntimeError):
    """The daemon's live count could not be read; the message says why and what to do."""


async def _get_json(url: str, token: str | None) -> Any:
    import aiohttp

    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(url, headers=headers) as response,
        ):
            text = await response.text()
            status = response.status
    except (aiohttp.ClientError, OSError) as exc:
        raise ProgressUnavailableError(
            f"cannot reach the live view at {url}: {exc or type(exc).__name__}; is "
            "`tagsweep run` running with [web] enabled = true?"
        ) from None
    try:
        data = json.loads(text)
    except ValueError:
        raise ProgressUnavailableError(f"{url}: HTTP {status}, not a live view answer") from None
    if status == 401:
        raise ProgressUnavailableError(
            f"{url}: {data.get('error')} (pass --token-env, or --config with a [web] token)"
        )
    if status != 200:
        raise ProgressUnavailableError(f"{url}: HTTP {status}: {data.get('error')}")
    return data


def fetch_progress(
    base_url: str,
    *,
    session_id: str | None = None,
    token: str | None = None,
    timeout: float = 5.0,
) -> dict[str, Any]:
    """The snapshot (plus ``health``) of ``session_id``, or of the only open session."""
    parts = urllib.parse.urlsplit(base_url)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ProgressUnavailableError(f"expected an http:// URL, got {base_url!r}")
    base = base_url.rstrip("/")

    async def bounded() -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            return await _fetch(base, session_id, token)

    try:
        return asyncio.run(bounded())
    except TimeoutError:
        raise ProgressUnavailableError(
            f"the live view at {base} did not answer within {timeout:g} s"
        ) from None


async def _fetch(base: str, session_id: str | None, token: str | None) -> dict[str, Any]:
    if session_id is None:
        listing = await _get_json(f"{base}/api/sessions", token)
        open_ids = [s["session_id"] for s in listing["sessions"] if not s["closed"]]
        if len(open_ids) != 1:
            known = ", ".join(s["session_id"] for s in listing["sessions"]) or "none"
            raise ProgressUnavailableError(
                f"{len(open_ids)} open count sessions with an expected register "
                f"(known: {known}); name one with --session"
            )
        session_id = open_ids[0]
    quoted = urllib.parse.quote(session_id, safe="")
    data: dict[str, Any] = await _get_json(f"{base}/api/sessions/{quoted}", token)
    return data


def _bar(seen: int, expected: int, width: int = 20) -> str:
    if expected <= 0:
        return " " * width
    filled = round(width * seen / expected)
    return "█" * filled + "░" * (width - filled)


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root + "/")


def render_progress(
    console: Console,
    snap: Mapping[str, Any],
    *,
    location: str | None = None,
    limit: int = 50,
) -> None:
    """Print totals, the per-location table, what is not yet seen and what is unexpected
    (the lists restricted to ``location`` when given)."""
    t = snap["totals"]
    context = snap.get("location_context") or "not set"
    state = "closed" if snap.get("closed") else "open"
    console.print(
        f"[bold]{snap['session_id']}[/] ({state}) · {snap.get('operator') or '-'} · "
        f"scope {', '.join(snap['scope'])} · context [bold]{context}[/]"
    )
    console.print(
        f"[bold red]{t['not_yet_seen']} not yet seen[/] · "
        f"[green]{t['seen']}/{t['expected']} seen[/] · "
        f"[yellow]{t['unexpected']} unexpected[/]"
    )
    table = Table(show_edge=False, pad_edge=False, box=None)
    table.add_column("location")
    table.add_column("progress")
    for name in ("seen", "not yet", "unexp."):
        table.add_column(name, justify="right")
    for row in snap["locations"]:
        if location and not (
            _under(row["location"], location) or _under(location, row["location"])
        ):
            continue
        depth = row["depth"] - min(r["depth"] for r in snap["locations"])
        table.add_row(
            "  " * depth + row["location"].rsplit("/", 1)[-1],
            _bar(row["seen"], row["expected"]),
            f"{row['seen']}/{row['expected']}",
            str(row["not_yet_seen"]),
            str(row["unexpected"]),
        )
    console.print(table)
    missing = [a for a in snap["not_yet_seen"] if not location or _under(a["location"], location)]
    where = f" in {location}" if location else ""
    console.print(
        f"\n[bold]Not yet seen{where}[/] ({len(missing)}"
        f"{'+' if snap.get('not_yet_seen_truncated') else ''})"
    )
    _list(
        console,
        [
            (
                a.get("asset_tag") or "",
                a.get("serial") or "",
                a.get("model") or "",
                a["location"] + (f" · {a['position']}" if a.get("position") else ""),
            )
            for a in missing
        ],
        ("asset tag", "serial", "model", "last known position"),
        limit,
    )
    odd = [u for u in snap["unexpected"] if not location or _under(u["seen_at"], location)]
    console.print(f"\n[bold]Unexpected{where}[/] ({len(odd)})")
    _list(
        console,
        [
            (
                u.get("asset_tag") or u.get("serial") or u.get("epc") or "",
                u["seen_at"],
                u.get("expected_at") or "not in register",
                u["reason"].replace("_", " "),
            )
            for u in odd
        ],
        ("item", "seen at", "register says", "why"),
        limit,
    )
    health = snap.get("health") or []
    if health:
        console.print("\n[bold]Readers and scanners[/]")
        for h in health:
            console.print(
                f"  {h['name']} ({h['kind']}): {h['state']} · {h['reads_per_s']} reads/s",
                markup=False,
            )


def _list(
    console: Console, rows: Sequence[tuple[str, ...]], header: tuple[str, ...], limit: int
) -> None:
    if not rows:
        console.print("  none")
        return
    table = Table(show_edge=False, pad_edge=False, box=None)
    for name in header:
        table.add_column(name)
    for row in rows[:limit]:
        table.add_row(*row)
    console.print(table)
    if len(rows) > limit:
        console.print(f"  … and {len(rows) - limit} more (--limit)")


def progress(
    *,
    session: Annotated[
        str | None, typer.Option("--session", help="Count session id (default: the open one).")
    ] = None,
    location: Annotated[
        str | None, typer.Option("--location", help="Only this location (and below).")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Longest list printed.")] = 50,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Configuration file (control socket, web token)."),
    ] = None,
    socket: Annotated[
        Path | None, typer.Option("--socket", help="Control socket of the running daemon.")
    ] = None,
    url: Annotated[
        str | None,
        typer.Option(
            "--url", help="Read the live view over HTTP instead, e.g. http://127.0.0.1:8080."
        ),
    ] = None,
    token_env: Annotated[
        str | None,
        typer.Option("--token-env", help="With --url: environment variable holding the token."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw JSON snapshot.")] = False,
) -> None:
    """Live count of the running session: what is not yet seen, per location.

    Expected, seen, not yet seen and unexpected for each location of the scope, and the
    lists to go and look (the session must have been started with --expected)."""
    import os

    from tagsweep.daemon.cli import _call, _load, _socket

    console = Console(highlight=False, soft_wrap=True, emoji=False)
    err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)
    if url is None:
        args = {"session_id": session} if session else {}
        snap = _call(_socket(socket, config), "session.progress", args)
    else:
        token = os.environ.get(token_env) if token_env else None
        if token is None and config is not None:
            secret = _load(config).web.token
            token = secret.get_secret_value() if secret is not None else None
        try:
            snap = fetch_progress(url, session_id=session, token=token)
        except ProgressUnavailableError as exc:
            err.print(f"error: {exc}", markup=False)
            raise typer.Exit(code=1) from None
    if as_json:
        console.print_json(json.dumps(snap))
        return
    render_progress(console, snap, location=location, limit=limit)
