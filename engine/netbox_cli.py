"""``tagsweep netbox push``: a count's results back into NetBox, with proof.

Pulling the register is ``tagsweep reconcile freeze --source NAME:netbox-api=URL``.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from tagsweep.netbox.options import TokenFileOption

netbox_app = typer.Typer(
    help="NetBox, live: push a count's results (and resolved cases) back.",
    no_args_is_help=True,
)
console = Console(highlight=False, soft_wrap=True, emoji=False)
err_console = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)

URL_ENV = "NETBOX_URL"


def _corrections(store: Path | None, config: Path | None) -> list[dict[str, Any]]:
    """Accepted corrections of resolved cases (none without a case store)."""
    from tagsweep.engine.cases_cli import open_store

    store = store or _env_path("TAGSWEEP_CASE_STORE")
    if store is None and config is None:
        return []
    with open_store(store, config) as cases:
        return list(cases.corrections())


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value) if value else None


@netbox_app.command("push")
def push_command(
    *,
    run: Annotated[Path, typer.Option("--run", help="Output folder of `tagsweep reconcile run`.")],
    url: Annotated[
        str | None,
        typer.Option("--url", envvar=URL_ENV, help="NetBox URL (default: $NETBOX_URL)."),
    ] = None,
    token_file: TokenFileOption = None,
    store: Annotated[
        Path | None,
        typer.Option(
            "--store",
            help="Case store folder whose resolved cases' corrections are applied "
            "(default: $TAGSWEEP_CASE_STORE, or the config's [engine.cases] store).",
        ),
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="TOML config.")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the full diff; change nothing.")
    ] = False,
    setup: Annotated[
        bool,
        typer.Option(
            "--setup", help="Create the custom fields last_counted and last_count_location."
        ),
    ] = False,
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, max=32, help="Requests in flight at once.")
    ] = 4,
) -> None:
    """Write a count back: last_counted / last_count_location on each counted device, a
    journal entry per variance, resolved cases' corrections (PATCH + journal entry), and
    a netbox-inventory audit trail when the plugin is installed. Pushing twice changes
    nothing the second time; a re-run finishes what a failed push left."""
    from tagsweep.engine.netbox_plan import PushError, read_run_facts, render_plan
    from tagsweep.engine.netbox_push import push
    from tagsweep.netbox.client import NetBoxAuthError, NetBoxError, TokenError, load_token

    if not url:
        err_console.print(f"error: give the NetBox URL with --url or ${URL_ENV}")
        raise typer.Exit(code=2)
    try:
        token = load_token(token_file)
        facts = read_run_facts(run)
        corrections = _corrections(store, config)
        plan, result = asyncio.run(
            push(
                url,
                token,
                facts,
                corrections,
                dry_run=dry_run,
                setup=setup,
                concurrency=concurrency,
            )
        )
    except (TokenError, ValueError) as exc:
        err_console.print(f"error: {exc}", markup=False)
        raise typer.Exit(code=2) from None
    except NetBoxAuthError as exc:
        err_console.print(f"error: {exc}", markup=False)
        raise typer.Exit(code=3) from None
    except (PushError, NetBoxError) as exc:
        err_console.print(f"error: {exc}", markup=False)
        raise typer.Exit(code=1) from None
    changes = plan.changes
    if dry_run:
        for line in render_plan(plan):
            console.print(line, markup=False)
        console.print(
            f"dry run: {len(changes)} device(s) would change; nothing was sent", markup=False
        )
        return
    assert result is not None
    for name in result.custom_fields_created:
        console.print(f"created custom field {name}", markup=False)
    names = {d.device_id: d.device for d in plan.devices}
    console.print(
        f"pushed run {plan.run_id}: {result.devices_updated} device(s) updated, "
        f"{result.journal_entries} journal entries, {result.corrections} correction(s), "
        f"{result.audit_trails} audit trail(s)"
        + ("" if changes else " (nothing to change: already pushed)"),
        markup=False,
    )
    for key in plan.not_in_netbox:
        err_console.print(f"not in NetBox: {key}", markup=False)
    for item in plan.no_device:
        err_console.print(f"no NetBox device for variance {item}", markup=False)
    for item in plan.not_applied:
        err_console.print(f"not applied: {item}", markup=False)
    for ident, reasons in sorted(result.failed.items()):
        for reason in reasons:
            err_console.print(
                f"failed: device {names.get(ident, ident)} (#{ident}): {reason}", markup=False
            )
    if result.failed:
        err_console.print(
            f"{len(result.failed)} device(s) failed; run the same push again to finish them",
            markup=False,
        )
        raise typer.Exit(code=1)
