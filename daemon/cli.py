"""``tagsweep run``, ``tagsweep status`` and ``tagsweep session …``.

``run`` is the daemon (what systemd starts). The other commands talk to a running daemon
over its control socket, found from ``--socket``, else the ``control.socket`` of
``--config``, else ``$TAGSWEEP_CONTROL_SOCKET``, else the packaged default.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from tagsweep.daemon.liveview.terminal import progress
from tagsweep.netbox.options import TokenFileOption

if TYPE_CHECKING:
    from tagsweep.config import TagsweepConfig
    from tagsweep.daemon.supervisor import Gateway

DEFAULT_SOCKET = Path("/run/tagsweep/control.sock")
SOCKET_ENV = "TAGSWEEP_CONTROL_SOCKET"

session_app = typer.Typer(
    help="Count sessions on a running gateway: start, set the location, stop.",
    no_args_is_help=True,
)

console = Console(highlight=False, soft_wrap=True, emoji=False)
err_console = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Configuration file (for its control.socket)."),
]
SocketOption = Annotated[
    Path | None, typer.Option("--socket", help="Control socket of the running daemon.")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the raw JSON answer.")]


def _load(config: Path) -> TagsweepConfig:
    from tagsweep.config import ConfigError, load_config

    try:
        return load_config(config)
    except ConfigError as exc:
        for problem in exc.problems:
            err_console.print(f"error: {problem}", markup=False)
        raise typer.Exit(code=2) from None


def _socket(socket: Path | None, config: Path | None) -> Path:
    if socket is not None:
        return socket
    if config is not None:
        return _load(config).control.socket
    env = os.environ.get(SOCKET_ENV)
    return Path(env) if env else DEFAULT_SOCKET


def _call(path: Path, cmd: str, args: dict[str, Any] | None = None) -> Any:
    from tagsweep.daemon.control import ControlError, call

    try:
        return call(path, cmd, args)
    except ControlError as exc:
        err_console.print(f"error: {exc}", markup=False)
        raise typer.Exit(code=1) from None


def build_gateway(config: TagsweepConfig) -> Gateway:
    """The gateway ``tagsweep run`` starts: the one place integrations are attached to it
    (sinks with ``add_sink``, tasks with ``add_service``, ``on_ready``, ``on_timing``)."""
    from tagsweep.daemon.integrations import attach_integrations
    from tagsweep.daemon.liveview.feed import attach_live_view
    from tagsweep.daemon.supervisor import Gateway

    gateway = Gateway(config)
    attach_integrations(gateway)
    attach_live_view(gateway)
    return gateway


def run_command(
    config: Annotated[Path, typer.Option("--config", "-c", help="Configuration file (TOML).")],
) -> None:
    """Run the gateway daemon until SIGTERM or SIGINT (then stop in order and exit 0)."""
    import asyncio
    import signal

    from tagsweep.daemon.control import ControlError
    from tagsweep.daemon.store import StoreError
    from tagsweep.drivers import DriverConfigError
    from tagsweep.logs import configure_logging, get_logger

    cfg = _load(config)
    configure_logging(json=cfg.logging.json_output, level=cfg.logging.level)
    log = get_logger("run", config=str(config))

    async def main() -> int:
        try:
            gateway = build_gateway(cfg)
        except DriverConfigError as exc:
            problem = str(exc)
        else:
            problem = ""
        if problem:
            log.error("reader_config_error", error=problem)
            return 2
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, gateway.request_stop)
        try:
            await gateway.run()
        except (ControlError, StoreError) as exc:
            problem = str(exc)
        if problem:
            log.error("gateway_failed", error=problem)
            return 1
        return 0

    raise typer.Exit(code=asyncio.run(main()))


def status_command(
    config: ConfigOption = None, socket: SocketOption = None, as_json: JsonOption = False
) -> None:
    """Show the running gateway: readers, open session, counters."""
    status = _call(_socket(socket, config), "status")
    if as_json:
        console.print_json(json.dumps(status))
        return
    console.print(
        f"gateway {status['gateway']} at site {status['site']} "
        f"(pid {status['pid']}, up {status['uptime_s']:.0f} s)",
        markup=False,
    )
    for d in status["devices"]:
        err = f"  last error: {d['last_error']}" if d.get("last_error") else ""
        console.print(
            f"  {d['kind']:<8}{d['name']:<16}{d['state']:<14}{d['reads']:>10} reads{err}",
            markup=False,
        )
    session = status.get("session")
    if session:
        console.print(
            f"  session {session['session_id']} by {session['operator']} at {session['location']}",
            markup=False,
        )
    else:
        console.print("  no count session open")
    c = status["counters"]
    console.print(
        f"  sightings {c['sightings_closed']} closed, {status['dedup']['open_sightings']} open; "
        f"committed {status['store']['committed_sightings']}",
        markup=False,
    )


def _netbox_register(url: str, token_file: Path | None) -> Path:
    """Pull NetBox's devices into ``expected-netbox-<time>.parquet`` in the current
    folder (the gateway reads it at the start of the session and again after a restart)."""
    import asyncio
    from datetime import UTC, datetime

    import pyarrow as pa
    import pyarrow.parquet as pq

    from tagsweep.netbox.client import NetBoxError, TokenError, load_token
    from tagsweep.netbox.fields import register_row
    from tagsweep.netbox.pull import fetch_records

    try:
        token = load_token(token_file)
        records, pages, _, origin = asyncio.run(fetch_records(url, token))
    except (TokenError, ValueError, NetBoxError) as exc:
        err_console.print(f"error: --expected netbox:{url}: {exc}", markup=False)
        raise typer.Exit(code=2) from None
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = Path.cwd() / f"expected-netbox-{stamp}.parquet"
    rows = [register_row(r) for r in records]
    columns = list(register_row({}))
    table = pa.table({c: pa.array([r[c] for r in rows], pa.string()) for c in columns})
    pq.write_table(table, path)
    err_console.print(
        f"expected register: {len(rows)} devices from {origin} ({pages} page(s)) -> {path}",
        markup=False,
    )
    return path


@session_app.command("start")
def session_start(
    *,
    operator: Annotated[str, typer.Option("--operator", help="Who is counting.")],
    site: Annotated[
        str | None, typer.Option("--site", help="Site (default: the gateway's).")
    ] = None,
    location: Annotated[
        str | None,
        typer.Option("--location", help="Starting location context, e.g. 'DC1/Room 302'."),
    ] = None,
    scope: Annotated[
        list[str] | None,
        typer.Option("--scope", help="Location(s) the count covers (repeatable)."),
    ] = None,
    expected: Annotated[
        str | None,
        typer.Option(
            "--expected",
            help="Register to count against live (golden.parquet, a run's register.parquet, "
            "or their folder), or netbox:URL to pull NetBox's devices now (the URL's query "
            "as filters, e.g. netbox:https://netbox.example.com/?site=dc1): see "
            "`tagsweep session progress` and the live view.",
        ),
    ] = None,
    token_file: TokenFileOption = None,
    config: ConfigOption = None,
    socket: SocketOption = None,
    as_json: JsonOption = False,
) -> None:
    """Open a count session on the running gateway."""
    args: dict[str, Any] = {"operator": operator, "site": site, "location": location}
    if scope:
        args["scope"] = list(scope)
    if expected is not None:
        register = (
            _netbox_register(expected.removeprefix("netbox:"), token_file)
            if expected.startswith("netbox:")
            else Path(expected)
        )
        args["expected"] = str(register.resolve())  # the daemon has its own working folder
    result = _call(_socket(socket, config), "session.start", args)
    if as_json:
        console.print_json(json.dumps(result))
        return
    console.print(
        f"started {result['session_id']} at {result['location']} by {result['operator']}",
        markup=False,
    )


@session_app.command("location")
def session_location(
    path: Annotated[str, typer.Argument(help="Location path, e.g. 'DC1/Room 302/Rack A04'.")],
    config: ConfigOption = None,
    socket: SocketOption = None,
) -> None:
    """Set the location context of the open count session."""
    result = _call(_socket(socket, config), "session.location", {"location": path})
    console.print(f"location {result['location']} ({result['session_id']})", markup=False)


@session_app.command("stop")
def session_stop(
    session_id: Annotated[
        str | None, typer.Option("--session", help="Only stop if this is the open session.")
    ] = None,
    config: ConfigOption = None,
    socket: SocketOption = None,
    as_json: JsonOption = False,
) -> None:
    """Stop the open count session and write its session file (Parquet + manifest)."""
    result = _call(_socket(socket, config), "session.stop", {"session_id": session_id})
    if as_json:
        console.print_json(json.dumps(result))
        return
    console.print(
        f"closed {result['session_id']}: {result['row_count']} observations\n"
        f"  {result['parquet']}\n  {result['manifest']}\n  sha256 {result['sha256']}",
        markup=False,
    )


@session_app.command("show")
def session_show(
    session_id: Annotated[
        str | None, typer.Argument(help="Session id (default: the open one).")
    ] = None,
    config: ConfigOption = None,
    socket: SocketOption = None,
) -> None:
    """Show one count session (JSON)."""
    result = _call(_socket(socket, config), "session.show", {"session_id": session_id})
    console.print_json(json.dumps(result, default=str))


@session_app.command("list")
def session_list(config: ConfigOption = None, socket: SocketOption = None) -> None:
    """List the gateway's count sessions, oldest first."""
    for row in _call(_socket(socket, config), "session.list"):
        console.print(
            f"{row['session_id']}  {row['state']:<9}{row['operator']:<12}"
            f"{row.get('row_count') or '':>7}  {row.get('file') or ''}",
            markup=False,
        )


session_app.command("progress")(progress)


@session_app.command("key")
def session_key(
    config: Annotated[Path, typer.Option("--config", "-c", help="The gateway's configuration.")],
) -> None:
    """Print the public key this gateway signs session manifests with (created on first
    use), as the line to add to the engine's [engine.trusted_gateways]."""
    from tagsweep import signing

    cfg = _load(config)
    path = cfg.store.signing_key_path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        key = signing.load_or_create_key(path)
    except (OSError, signing.SigningError) as exc:
        err_console.print(f"error: {exc}", markup=False)
        raise typer.Exit(code=1) from None
    public = signing.public_key_text(key.public_key())
    console.print(f'"{cfg.gateway.id}" = "{public}"', markup=False)
