"""The ``tagsweep`` command line: one entry point, subcommands grouped by program.

Groups appear here only once they do something. Each group's commands live next to the
code they drive; heavy imports happen inside the commands so ``--help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from tagsweep import __version__
from tagsweep.commission_cli import tag_app
from tagsweep.daemon.cli import run_command, session_app, status_command
from tagsweep.daemon.liveview.certificate import web_app
from tagsweep.drivers.cli import llrp_app
from tagsweep.engine.audit_cli import audit_app
from tagsweep.engine.cases_cli import cases_app
from tagsweep.engine.cli import reconcile_app
from tagsweep.engine.netbox_cli import netbox_app
from tagsweep.labels.cli import labels_command
from tagsweep.netbox.options import TokenFileOption
from tagsweep.simulators.cli import sim_app

app = typer.Typer(
    name="tagsweep",
    help="Count IT assets with RFID and barcode readers and reconcile the count "
    "against the systems of record.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Validate configuration files.", no_args_is_help=True)
app.add_typer(config_app, name="config")

app.add_typer(cases_app, name="cases")
app.add_typer(audit_app, name="audit")
app.add_typer(reconcile_app, name="reconcile")
app.add_typer(netbox_app, name="netbox")
app.add_typer(sim_app, name="sim")
app.add_typer(llrp_app, name="llrp")
app.add_typer(tag_app, name="tag")
app.command("run")(run_command)
app.command("status")(status_command)
app.command("labels")(labels_command)
app.add_typer(session_app, name="session")
app.add_typer(web_app, name="web")

console = Console(highlight=False, soft_wrap=True, emoji=False)
err_console = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)


@app.command()
def version() -> None:
    """Print the tagsweep version."""
    console.print(f"tagsweep {__version__}")


@app.command()
def demo(
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Empty folder for everything (default: a new temp dir)."),
    ] = None,
    speed: Annotated[
        float, typer.Option("--speed", min=0.5, max=100.0, help="Replay speed of the world.")
    ] = 12.0,
    assets: Annotated[int, typer.Option("--assets", min=20, help="Tagged assets.")] = 2000,
    racks: Annotated[int, typer.Option("--racks", min=2, help="Racks over 2 rooms.")] = 20,
    seed: Annotated[int, typer.Option("--seed", help="World and exports seed.")] = 1,
    *,
    netbox: Annotated[
        str | None,
        typer.Option(
            "--netbox",
            help="A test NetBox URL: the register is loaded into it, frozen from its API, "
            "and the run pushed back (token from --token-file or $NETBOX_TOKEN).",
        ),
    ] = None,
    token_file: TokenFileOption = None,
) -> None:
    """Count a simulated data centre with the real gateway (LLRP handheld, door portal,
    barcode scanner), reconcile it against generated exports and open the cases."""
    from tagsweep.netbox.client import NetBoxError, TokenError, load_token
    from tagsweep.simulators.demo import DemoOptions, print_summary, run_demo

    token = None
    if netbox is not None:
        try:
            token = load_token(token_file)
        except TokenError as exc:
            err_console.print(f"error: {exc}", markup=False)
            raise typer.Exit(code=2) from None
    options = DemoOptions(
        out=out, speed=speed, assets=assets, racks=racks, seed=seed, netbox=netbox,
        netbox_token=token,
    )  # fmt: skip
    try:
        result = run_demo(options, err_console)
    except NetBoxError as exc:
        err_console.print(f"error: NetBox: {exc}", markup=False)
        raise typer.Exit(code=1) from None
    except ValueError as exc:
        err_console.print(f"error: {exc}", markup=False)
        raise typer.Exit(code=2) from None
    print_summary(result, console)


@config_app.command("check")
def config_check(
    file: Annotated[Path, typer.Argument(help="TOML configuration file to validate.")],
) -> None:
    """Validate a configuration without starting anything; print OK and a summary, or
    every error with file, line, key path and what was expected. A secret that is not
    provisioned here (environment variable unset, secret file absent) is a warning: the
    configuration is often checked on another machine than the one that runs it, where
    `tagsweep run` refuses to start without it."""
    from tagsweep.config import ConfigError, ConfigProblem, load_config

    absent: list[ConfigProblem] = []
    try:
        config = load_config(file, absent_secrets=absent)
    except ConfigError as exc:
        for problem in exc.problems:
            err_console.print(f"error: {problem}", markup=False)
        err_console.print(f"{len(exc.problems)} error(s) in {file}")
        raise typer.Exit(code=1) from None
    for problem in absent:
        err_console.print(
            f"warning: {problem} (`tagsweep run` needs it; see README, Configuration)",
            markup=False,
        )
    web = config.web
    if web.enabled and web.insecure and not web.loopback and web.token is None:
        err_console.print(
            f"warning: {file}: web.insecure: the live view on {web.listen} is served "
            "without a token to anyone who can reach it; set web.token_file or "
            "web.token_env",
            markup=False,
        )
    console.print(f"OK {file}")
    console.print(f"  gateway   {config.gateway.id} at site {config.gateway.site}")
    for reader in config.readers:
        extra = f" portal zone {reader.portal.zone}" if reader.portal else ""
        console.print(
            f"  reader    {reader.name} ({reader.role}) {reader.url}{extra}", markup=False
        )
    for scanner in config.scanners:
        console.print(f"  scanner   {scanner.name} {scanner.url}", markup=False)
    console.print(
        f"  locations {len(config.locations)} "
        f"({sum(1 for loc in config.locations if loc.label)} with labels)"
    )
    mqtt = config.mqtt
    if mqtt.enabled:
        auth = f" user {mqtt.username}" if mqtt.username else ""
        secret = " password set" if mqtt.password is not None else ""
        tls = " tls" if mqtt.tls else ""
        console.print(
            f"  mqtt      {mqtt.host}:{mqtt.port}{tls}{auth}{secret} "
            f"topic {mqtt.topic_prefix}/{config.gateway.site}/{config.gateway.id}/#"
        )
    else:
        console.print("  mqtt      disabled")
    metrics = f"http://{config.metrics.listen}/metrics" if config.metrics.enabled else "disabled"
    console.print(f"  metrics   {metrics}")
    web = config.web
    if web.enabled:
        scheme = "https" if web.tls else "http"
        token = " token set" if web.token is not None else ""
        console.print(f"  web       {scheme}://{web.listen}{token} (live page, camera scanning)")
    else:
        console.print("  web       disabled")
    if not config.readers and not config.scanners:
        console.print("  devices   none: phones only (camera scanning in the live page)")
    console.print(f"  store     {config.store.path}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
