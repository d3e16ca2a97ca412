"""``tagsweep reconcile freeze`` and ``tagsweep reconcile run``.

Freeze first, then run against the frozen snapshot: the seed method insists that the
baseline is fixed before the count is compared, and a separate freeze step makes the
snapshot an artefact that can be archived, hashed and re-run.
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console, JustifyMethod
from rich.table import Table

from tagsweep.engine.cases_cli import (
    ActorOpt,
    ConfigOpt,
    KeyOpt,
    StoreOpt,
    actor_name,
    open_store,
)
from tagsweep.netbox.options import TokenFileOption

if TYPE_CHECKING:
    from tagsweep.config.engine import EngineSection
    from tagsweep.engine.freeze import SourceSpec
    from tagsweep.engine.run import RunResult

reconcile_app = typer.Typer(
    help="Reconcile counts against frozen exports of the systems of record.",
    no_args_is_help=True,
)

COUNT_SUFFIXES = (".parquet", ".csv")


def expand_count_paths(paths: list[Path]) -> list[Path]:
    """Resolve ``--count`` arguments: files as given, folders to the session files and
    count sheets in them, and quoted globs (one folder per gateway, e.g.
    ``sessions/*/*.parquet``) to their matches, sorted so a run is reproducible."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in COUNT_SUFFIXES)
            if not found:
                raise ValueError(f"--count {path}: no .parquet or .csv files in this folder")
            out.extend(found)
        elif not path.exists() and any(ch in str(path) for ch in "*?["):
            anchor = Path(path.anchor or ".")
            pattern = str(path.relative_to(anchor)) if path.is_absolute() else str(path)
            found = sorted(p for p in anchor.glob(pattern) if p.is_file())
            if not found:
                raise ValueError(f"--count {path}: the pattern matches no file")
            out.extend(found)
        else:
            out.append(path)
    return out


def expand_run_dirs(paths: list[Path]) -> list[Path]:
    """Resolve ``--history`` arguments: run folders as given, and quoted globs (e.g.
    ``'runs/*'``) to the folders they match, sorted so a run is reproducible."""
    out: list[Path] = []
    for path in paths:
        if not path.exists() and any(ch in str(path) for ch in "*?["):
            anchor = Path(path.anchor or ".")
            pattern = str(path.relative_to(anchor)) if path.is_absolute() else str(path)
            found = sorted(p for p in anchor.glob(pattern) if p.is_dir())
            if not found:
                raise ValueError(f"--history {path}: the pattern matches no folder")
            out.extend(found)
        elif path.is_dir():
            out.append(path)
        else:
            raise ValueError(f"--history {path}: not a run folder")
    return out


console = Console(highlight=False, soft_wrap=True, emoji=False)
err_console = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)


def _settings(config: Path | None) -> EngineSection:
    from tagsweep.config import ConfigError, load_config
    from tagsweep.config.engine import EngineSection

    if config is None:
        return EngineSection()
    try:
        return load_config(config).engine
    except ConfigError as exc:
        for problem in exc.problems:
            err_console.print(f"error: {problem}", markup=False)
        raise typer.Exit(code=2) from None


def _audit_log(config: Path | None) -> Path:
    """The case store's audit log (``[engine.cases] store``, relative to the config)."""
    store = _settings(config).cases.store
    if config is not None and not store.is_absolute():
        store = config.parent / store
    return store / "audit.jsonl"


def _split(value: str, what: str) -> tuple[str, str]:
    name, sep, rest = value.partition("=")
    if not sep or not name or not rest:
        err_console.print(f"error: {what} must look like NAME=VALUE, got {value!r}", markup=False)
        raise typer.Exit(code=2)
    return name.strip(), rest.strip()


NETBOX_API = "netbox-api"


def _pull_netbox(name: str, url: str, token_file: Path | None, folder: Path) -> SourceSpec:
    """Pull a ``netbox-api`` source into ``folder`` and say what was fetched."""
    from tagsweep.engine.freeze import SourceSpec
    from tagsweep.netbox.client import NetBoxError, TokenError, load_token
    from tagsweep.netbox.pull import pull_export

    try:
        token = load_token(token_file)
        pulled = pull_export(url, token, folder / f"{name}.netbox-api.json")
    except (TokenError, ValueError) as exc:
        err_console.print(f"error: source {name!r}: {exc}", markup=False)
        raise typer.Exit(code=2) from None
    except NetBoxError as exc:
        err_console.print(f"error: source {name!r}: {exc}", markup=False)
        raise typer.Exit(code=1) from None
    err_console.print(
        f"pulled {pulled.records} records in {pulled.pages} page(s) from {pulled.origin}",
        markup=False,
    )
    return SourceSpec(name, pulled.path, "netbox", pulled.fetched_at, origin=pulled.origin)


@reconcile_app.command("freeze")
def freeze_command(
    *,
    source: Annotated[
        list[str],
        typer.Option(
            "--source",
            "-s",
            help="NAME[:PRESET]=FILE, e.g. itam:snipeit=assets.csv, mdm:intune=devices.csv, "
            "hr=people.csv. Presets: snipeit, netbox, servicenow, intune, jamf, sap_fiaa, "
            "generic, fixed_asset, procurement, hr (default: the name if it is a preset, "
            "else generic, whose role the name gives: mdm, fixed_asset, procurement, hr). "
            "NAME:netbox-api=URL pulls NetBox's devices from its REST API, the URL's query "
            "as filters (e.g. 'dcim:netbox-api=https://netbox.example.com/?site=dc1&tag=x').",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="New, empty snapshot directory.")],
    config: Annotated[Path | None, typer.Option("--config", "-c", help="TOML config.")] = None,
    exported_at: Annotated[
        list[str] | None,
        typer.Option("--exported-at", help="NAME=ISO-8601 time the export was taken."),
    ] = None,
    token_file: TokenFileOption = None,
) -> None:
    """Freeze exports into a hashed snapshot; bad rows are reported and kept out."""
    import tempfile

    from tagsweep.engine.freeze import FreezeError, SourceSpec, freeze

    settings = _settings(config)
    times: dict[str, datetime] = {}
    for item in exported_at or []:
        name, value = _split(item, "--exported-at")
        parsed = datetime.fromisoformat(value)
        times[name] = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    specs = []
    with tempfile.TemporaryDirectory(prefix="tagsweep-pull-") as pulled_dir:
        for item in source:
            left, path = _split(item, "--source")
            name, _, preset = left.partition(":")
            if preset == NETBOX_API:
                specs.append(_pull_netbox(name, path, token_file, Path(pulled_dir)))
                continue
            specs.append(SourceSpec(name, Path(path), preset or None, times.get(name)))
        try:
            snapshot = freeze(specs, out, settings)
        except FreezeError as exc:
            err_console.print(f"error: {exc}", markup=False)
            raise typer.Exit(code=1) from None
    from tagsweep.engine.export_rules import contribution, key_columns

    table = Table(title=f"snapshot {out}")
    for col in (
        "source", "preset", "role", "rows", "key columns", "contributes",
        "bad rows", "bad values", "skipped", "encoding", "exported at",
    ):  # fmt: skip
        table.add_column(col)
    for s in snapshot.sources:
        table.add_row(
            s.name,
            s.preset,
            s.role,
            str(s.rows),
            key_columns(s.columns),
            contribution(s.role, s.columns),
            str(s.bad_rows),
            str(s.bad_values),
            str(s.skipped_rows),
            s.encoding or s.format,
            s.exported_at,
        )
    console.print(table)
    for bad in snapshot.bad_rows[:20]:
        err_console.print(f"bad row: {bad.file}:{bad.line}: {bad.reason}", markup=False)
    if len(snapshot.bad_rows) > 20:
        err_console.print(f"... {len(snapshot.bad_rows) - 20} more in snapshot.json")
    for bad_value in snapshot.bad_values[:20]:
        err_console.print(
            f"bad value (field emptied, record kept): {bad_value.file}:{bad_value.line} "
            f"column {bad_value.column!r}: {bad_value.value!r} {bad_value.reason}",
            markup=False,
        )
    if len(snapshot.bad_values) > 20:
        err_console.print(f"... {len(snapshot.bad_values) - 20} more in snapshot.json")
    for row in snapshot.skipped_rows:
        err_console.print(f"skipped: {row.file}:{row.line}: {row.reason}", markup=False)
    for warning in snapshot.warnings:
        err_console.print(f"warning: {warning}", markup=False)


@reconcile_app.command("run")
def run_command(
    *,
    snapshot: Annotated[
        Path,
        typer.Option(
            "--snapshot",
            help="Snapshot directory from 'reconcile freeze', or a previous golden "
            "register .parquet as the baseline.",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run output directory.")],
    count: Annotated[
        list[Path] | None,
        typer.Option(
            "--count",
            help="Session file (.parquet), manual count sheet (.csv), a folder of them, or a "
            "quoted glob such as 'sessions/*/*.parquet'; repeat for more.",
        ),
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="TOML config.")] = None,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Run date (default: latest count time).")
    ] = None,
    scope: Annotated[
        list[str] | None,
        typer.Option("--scope", help="Location prefix in scope (default: session manifests)."),
    ] = None,
    debug_dir: Annotated[
        Path | None,
        typer.Option("--debug-dir", help="Write every stage's table as Parquet here."),
    ] = None,
    memory_limit: Annotated[
        str | None, typer.Option("--memory-limit", help="DuckDB memory limit, e.g. 8GB.")
    ] = None,
    history: Annotated[
        list[Path] | None,
        typer.Option(
            "--history",
            help="Earlier run folder, or a quoted glob such as 'runs/*'; repeat for more. "
            "The report then shows the trends across them and this run.",
        ),
    ] = None,
    timings: Annotated[
        bool,
        typer.Option(
            "--timings",
            help="Print seconds and peak memory per stage (always in the run's timings.json).",
        ),
    ] = False,
    allow_unverified: Annotated[
        bool,
        typer.Option(
            "--allow-unverified",
            help="Count session files that have no manifest or no trusted signature; "
            "the run manifest and report name each one.",
        ),
    ] = False,
) -> None:
    """Normalize, match and classify; write the variance log, register, report."""
    from rich.progress import Progress

    from tagsweep.engine.freeze import FreezeError
    from tagsweep.engine.run import RunError, reconcile
    from tagsweep.engine.stages import Stage

    settings = _settings(config)
    run_date = date.fromisoformat(as_of) if as_of else None
    try:
        counts = expand_count_paths(count or [])
        earlier = expand_run_dirs(history or [])
    except ValueError as exc:
        err_console.print(f"error: {exc}", markup=False)
        raise typer.Exit(code=1) from None
    with Progress(console=err_console, transient=True) as progress:
        task = progress.add_task("reconcile", total=None)

        def on_stage(stage: Stage) -> None:
            progress.update(task, description=f"{stage.group}: {stage.name}")

        try:
            result = reconcile(
                snapshot,
                counts,
                settings,
                out,
                as_of=run_date,
                scope=scope,
                debug_dir=debug_dir,
                on_stage=on_stage,
                memory_limit=memory_limit,
                history=earlier,
                audit_log=_audit_log(config),
                allow_unverified=allow_unverified,
            )
        except (RunError, FreezeError) as exc:
            err_console.print(f"error: {exc}", markup=False)
            raise typer.Exit(code=1) from None
    _print_run(result, out)
    if timings:
        print_timings(result.profile)


def print_timings(profile: dict[str, Any]) -> None:
    """The stages of a run by start time: seconds, share of the wall time, peak memory."""
    wall = float(profile["wall_seconds"]) or 1.0
    table = Table(title=f"timings: {wall:.2f} s wall, peak {profile['peak_rss_mb']:.0f} MB")
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("stage", "left"), ("starts at s", "right"), ("seconds", "right"),
        ("% of wall", "right"), ("peak MB", "right"),
    )  # fmt: skip
    for col, justify in columns:
        table.add_column(col, justify=justify)
    for stage in profile["stages"]:
        table.add_row(
            f"{stage['group']}/{stage['name']}",
            f"{stage['started_s']:.2f}",
            f"{stage['seconds']:.2f}",
            f"{100 * stage['seconds'] / wall:.0f}",
            f"{stage['peak_rss_mb']:.0f}",
        )
    console.print(table)
    console.print("stages overlap (background jobs run beside the stages): shares do not add up")


def _print_run(result: RunResult, out: Path) -> None:
    from tagsweep.engine.report import VARIANCE_LABELS, band

    counts = result.manifest["counts"]
    console.print(f"run {result.run_id} as of {result.as_of}  →  {out}")
    console.print(
        f"register {counts['register_assets']}  expected {counts['expected_in_count']}  "
        f"found {counts['found']}  counted items {counts['counted_items']}  "
        f"bad rows {counts['bad_rows']}  bad values {counts.get('bad_values', 0)} "
        "(bad_values.csv)"
    )
    rate = float(counts["variance_rate_percent"])
    console.print(f"variances {counts['variances']}  rate {rate:.1f} % ({band(rate)})")
    table = Table(show_header=True)
    table.add_column("variance type")
    table.add_column("count", justify="right")
    for name, n in counts["by_type"].items():
        if n:
            table.add_row(VARIANCE_LABELS.get(name, name), str(n))
    console.print(table)
    for warning in result.manifest["warnings"]:
        err_console.print(f"warning: {warning}", markup=False)
    console.print("report: " + str(out / "report.html"))


# -- step 5 of the method: lessons learned across runs, and the next golden register --


@reconcile_app.command("trends")
def trends_command(
    runs: Annotated[list[Path], typer.Argument(help="Run folders to compare (any order).")],
    *,
    out: Annotated[Path, typer.Option(help="Folder for trends.html/.md/.svg/.json.")] = Path(
        "trends"
    ),
    top: Annotated[int, typer.Option(min=1, help="Rows per table.")] = 20,
) -> None:
    """Compare runs: variance rate, recurring categories, repeat offenders.

    Writes trends.html (with an SVG chart), trends.md, trends.svg and trends.json.
    """
    from tagsweep.engine.trends import TrendsError, compare_runs, write_trends

    try:
        trends = compare_runs(runs, top=top)
    except TrendsError as exc:
        err_console.print(f"error: {exc}", markup=False)
        raise typer.Exit(code=1) from None
    paths = write_trends(trends, out)
    for point in trends.points:
        rate = "?" if point.rate is None else f"{point.rate:.1%}"
        console.print(
            f"{point.run_date} {point.run_id}: {point.variances} variances, rate {rate} "
            f"({point.band})",
            markup=False,
        )
    console.print(
        f"{len(trends.by_location)} recurring by location, {len(trends.by_source)} by source, "
        f"{len(trends.repeat_offenders)} repeat offenders; wrote {paths['html']}",
        markup=False,
    )


@reconcile_app.command("golden")
def golden_command(
    run: Annotated[Path, typer.Option("--run", help="Run folder whose register is the base.")],
    *,
    out: Annotated[Path, typer.Option(help="Folder for golden.parquet/.csv/.json.")],
    store: StoreOpt = None,
    config: ConfigOpt = None,
    actor: ActorOpt = None,
    key: KeyOpt = None,
) -> None:
    """Write the next golden register (Parquet and CSV) from a run and its cases.

    The run's register with every accepted case correction applied, with per-field
    provenance (source, run, case); usable as the next run's baseline.
    """
    from tagsweep.engine.golden import GoldenError, build_golden

    with open_store(store, config, sign=True, key=key) as cases:
        who = actor_name(actor, cases)
        try:
            result = build_golden(run, cases, out, actor=who)
        except GoldenError as exc:
            err_console.print(f"error: {exc}", markup=False)
            raise typer.Exit(code=1) from None
    console.print(
        f"wrote {result.parquet} and {result.csv}: {result.rows} assets, "
        f"{len(result.applied)} corrections applied, {len(result.added)} assets added, "
        f"{len(result.unapplied)} not applicable (see {result.manifest.name})",
        markup=False,
    )


@reconcile_app.command("nightly")
def nightly_command(
    *,
    config: Annotated[
        Path, typer.Option("--config", "-c", help="TOML config with [engine.nightly].")
    ],
    state_dir: Annotated[
        Path | None,
        typer.Option(
            "--state-dir",
            help="Folder of exports/, sessions/, snapshots/, runs/ (default: "
            "$STATE_DIRECTORY as systemd sets it, else [engine.nightly] state_dir).",
        ),
    ] = None,
    memory_limit: Annotated[
        str | None, typer.Option("--memory-limit", help="DuckDB memory limit, e.g. 8GB.")
    ] = None,
) -> None:
    """What the nightly timer runs: freeze the configured exports into a new dated
    snapshot, reconcile every session file (flat or one folder per gateway) against it
    into a new dated run, and keep only the newest snapshots and runs."""
    from tagsweep.engine.freeze import FreezeError
    from tagsweep.engine.nightly import NightlyError, run_nightly
    from tagsweep.engine.run import RunError

    settings = _settings(config)
    env_dir = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    root = state_dir or (Path(env_dir) if env_dir else settings.nightly.state_dir)
    try:
        result = run_nightly(
            settings, root, memory_limit=memory_limit, audit_log=_audit_log(config)
        )
    except (NightlyError, FreezeError, RunError) as exc:
        err_console.print(f"error: {exc}", markup=False)
        raise typer.Exit(code=1) from None
    for warning in result.warnings:
        err_console.print(f"warning: {warning}", markup=False)
    if result.run is None or result.run_dir is None:
        return
    console.print(f"snapshot {result.snapshot}  counts {len(result.counts)} file(s)")
    _print_run(result.run, result.run_dir)
    for path in result.removed:
        console.print(f"removed {path} (beyond the number kept)")
