"""``tagsweep sim …``: run the simulators by hand (readers, scanners, exports)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

sim_app = typer.Typer(
    help="Run simulated readers, scanners and systems of record (for tests, demos, trials).",
    no_args_is_help=True,
)


@sim_app.command("scanner")
def scanner(
    *,
    script: Annotated[
        Path,
        typer.Option(
            "--script",
            help="Scan lines, one per line; '# …' comments, 'sleep SECONDS', <GS> for FNC1.",
        ),
    ],
    pty: Annotated[
        bool, typer.Option("--pty", help="Serve a pseudo-terminal (a serial device).")
    ] = False,
    tcp: Annotated[
        int | None,
        typer.Option("--tcp", help="Serve a TCP port on 127.0.0.1 (0 picks a free one)."),
    ] = None,
    noise: Annotated[
        str,
        typer.Option(
            "--noise",
            help="Faults, e.g. 'garbage=0.2,split=0.3,terminators,disconnect=0.05,truncate=0.02,"
            "seed=7'.",
        ),
    ] = "",
    terminator: Annotated[
        str, typer.Option("--terminator", help="CR, LF, CRLF, TAB, ETX or characters.")
    ] = "CR",
    interval: Annotated[
        float, typer.Option("--interval", help="Seconds between scans.", min=0)
    ] = 0.5,
    repeat: Annotated[bool, typer.Option("--repeat", help="Play the script forever.")] = False,
    exit_when_done: Annotated[
        bool,
        typer.Option("--exit-when-done", help="Exit after the script instead of staying open."),
    ] = False,
) -> None:
    """A barcode scanner on a pty or TCP port, playing a script of scans (with noise).

    Prints the driver URL (e.g. serial:///tmp/…/ttySIM0 or socket://127.0.0.1:7000)
    on the first line: use it as a scanner url in the configuration or with open_driver.
    """
    import asyncio
    import contextlib

    from tagsweep.simulators.scanner import Noise, ScannerSimulator, load_script

    if pty == (tcp is not None):
        raise typer.BadParameter("give exactly one of --pty or --tcp PORT")
    try:
        lines = load_script(script, interval_s=interval)
        faults = Noise.parse(noise)
    except (OSError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from None

    async def run() -> None:
        async with ScannerSimulator(
            mode="pty" if pty else "tcp",
            script=lines,
            noise=faults,
            terminator=terminator,
            port=tcp or 0,
            repeat=repeat,
        ) as sim:
            typer.echo(sim.url)
            await sim.finished()
            typer.echo(
                f"done: {len(sim.sent)} scans, {sim.garbage_lines} garbage lines, "
                f"{sim.disconnects} disconnects",
                err=True,
            )
            if not exit_when_done:
                await asyncio.Event().wait()  # keep the device present until Ctrl-C

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how a manual run ends
        asyncio.run(run())


@sim_app.command("llrp")
def llrp(
    *,
    port: Annotated[int, typer.Option("--port", help="TCP port (0 picks a free one).")] = 5084,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    tags: Annotated[int, typer.Option("--tags", help="Distinct tags in the field.", min=1)] = 500,
    rate: Annotated[float, typer.Option("--rate", help="Reads per second.", min=0.001)] = 1000,
    antennas: Annotated[str, typer.Option("--antennas", help="Antenna ids, e.g. 1,2.")] = "1",
    impinj: Annotated[
        bool, typer.Option("--impinj", help="Report Impinj phase, peak RSSI and Doppler.")
    ] = False,
    fault: Annotated[
        list[str] | None,
        typer.Option(
            "--fault",
            help="KIND[@AFTER_REPORTS][:CONNECTION|:all], repeatable. Kinds: drop, stall, "
            "garbage, noise, absurd_length, wrong_length, vendor, vendor_malformed, "
            "missed_keepalives, burst, config_error, busy, intruder.",
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed for tags and faults.")] = 0,
    no_utc_clock: Annotated[
        bool,
        typer.Option(
            "--no-utc-clock", help="A reader without a UTC clock (same as --clock uptime)."
        ),
    ] = False,
    profile: Annotated[
        str,
        typer.Option(
            "--profile",
            help="Behave like this reader: impinj-r420, impinj-r700, zebra-fx9600, "
            "thingmagic-sargas or generic (see the README).",
        ),
    ] = "generic",
    tls: Annotated[
        bool,
        typer.Option(
            "--tls",
            help="Serve LLRP over TLS (as an Impinj R700 on port 5085) with a fresh "
            "self-signed certificate; the printed llrps:// URL pins its fingerprint.",
        ),
    ] = False,
    clock: Annotated[
        str,
        typer.Option(
            "--clock",
            help="The reader's clock: utc (right), uptime (no UTC clock), unset (counts "
            "from 2000-01-01 since boot), offset=-3h (hours off; s, m, h, d).",
        ),
    ] = "utc",
) -> None:
    """A UHF RFID reader speaking LLRP 1.0.1 on a TCP port, reading random tags.

    Prints the driver URL (llrp://host:port) on the first line. Faults are injected per
    connection, e.g. --fault garbage@3 --fault drop@10 breaks the first connection only.
    """
    import asyncio
    import contextlib

    from tagsweep.domain import now_us
    from tagsweep.simulators.llrp import Fault, LlrpSimulator, random_tags
    from tagsweep.simulators.llrp.encoder import parse_clock
    from tagsweep.simulators.llrp.profiles import profile as reader_profile

    try:
        chosen = reader_profile(profile)
        identity = parse_clock("uptime" if no_utc_clock else clock, now_us(), chosen.identity)
        antenna_ids = tuple(int(a) for a in antennas.split(",") if a.strip())
        faults = [Fault.parse(spec) for spec in fault or []]
        source = random_tags(tags, rate, antennas=antenna_ids or (1,), seed=seed, impinj=impinj)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from None

    async def run() -> None:
        options: dict[str, Any] = {"tag_source": source, "faults": faults, "seed": seed}
        options["identity"] = identity
        options["profile"] = chosen
        if tls:
            import tempfile
            from pathlib import Path

            from tagsweep.simulators.llrp.tls import self_signed, server_context

            with tempfile.TemporaryDirectory(prefix="tagsweep-sim-tls-") as folder:
                certificate = self_signed(Path(folder), host)
                options["tls"] = server_context(certificate.cert, certificate.key)
            pin = f"&tls_fingerprint={certificate.fingerprint.replace(':', '')}"
        async with LlrpSimulator(host, port, **options) as sim:
            scheme = "llrps" if tls else "llrp"
            url = f"{scheme}://{host}:{sim.port}?antennas={antennas}"
            typer.echo(url + (pin if tls else ""))
            await sim.serve_forever()

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how a manual run ends
        asyncio.run(run())
