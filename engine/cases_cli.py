"""``tagsweep cases …``: the investigation workflow on the CLI.

Every command names the case store folder (``--store``, ``TAGSWEEP_CASE_STORE``, or
``[engine.cases] store`` of ``--config``). Who acts is what the audit log records and what
the approval chain checks, so it is never left implicit: with ``[engine.cases]
allowed_signers`` set, it is the owner of the SSH key that signs the change (from
ssh-agent, or ``--key`` / ``TAGSWEEP_SIGNING_KEY``) and ``--actor`` is only a cross-check
that must match; without it (unsigned, legacy), it is ``--actor`` / ``TAGSWEEP_ACTOR``,
else the login name.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from tagsweep.config.cases import CasesSection

cases_app = typer.Typer(
    help="Investigate variances: cases, evidence, write-off approvals.", no_args_is_help=True
)

console = Console(highlight=False, soft_wrap=True, emoji=False)
err_console = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)

StoreOpt = Annotated[
    Path | None,
    typer.Option(
        "--store",
        envvar="TAGSWEEP_CASE_STORE",
        help="Case store folder (default: [engine.cases] store of --config, else ./cases).",
    ),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="tagsweep TOML file with an [engine.cases] table."),
]
ActorOpt = Annotated[
    str | None,
    typer.Option(
        "--actor",
        envvar="TAGSWEEP_ACTOR",
        help="Who is acting. When changes are signed: only a cross-check of the signing "
        "key's owner. Unsigned: the name recorded (default: the login name).",
    ),
]
KeyOpt = Annotated[
    Path | None,
    typer.Option(
        "--key",
        envvar="TAGSWEEP_SIGNING_KEY",
        help="SSH key to sign with: a private key file, or a .pub file of a key in "
        "ssh-agent (default: the first ssh-agent key listed in allowed_signers).",
    ),
]


def cases_settings(config: Path | None) -> CasesSection:
    if config is None:
        return CasesSection()
    from tagsweep.config import ConfigError, load_config

    try:
        settings = load_config(config).engine.cases
    except ConfigError as exc:
        for problem in exc.problems:
            err_console.print(f"error: {problem}", markup=False)
        raise typer.Exit(code=2) from None
    signers = settings.allowed_signers
    if signers is not None and not signers.is_absolute():
        settings = settings.model_copy(update={"allowed_signers": config.parent / signers})
    return settings


def actor_name(actor: str | None, cases: Any) -> str | None:
    """The claimed actor: the login name by default when changes are unsigned; when they
    are signed, only what the user passed (the key says who acts)."""
    if cases.signers is not None:
        return actor
    return (actor or getpass.getuser()).strip() or None


@contextmanager
def open_store(
    store: Path | None,
    config: Path | None,
    *,
    create: bool = False,
    sign: bool = False,
    key: Path | None = None,
) -> Iterator[Any]:
    """Open the case store (with the signing key when ``sign`` and signing is set up) and
    turn workflow refusals into one-line errors (exit 1)."""
    from tagsweep.engine.allowed_signers import AllowedSigners, find_signer
    from tagsweep.engine.audit import AuditLogError
    from tagsweep.engine.cases import CaseError, CaseStore
    from tagsweep.engine.sshsig import SignatureError

    settings = cases_settings(config)
    root = store
    if root is None:
        root = settings.store
        if config is not None and not root.is_absolute():
            root = config.parent / root
    try:
        signer = None
        if sign and (settings.allowed_signers is not None or key is not None):
            known = None
            if settings.allowed_signers is not None:
                known = AllowedSigners.load(settings.allowed_signers)
            signer = find_signer(key, known)
        yield CaseStore(root, settings, create=create, signer=signer)
    except (CaseError, AuditLogError, SignatureError) as exc:
        err_console.print(f"error: {exc}", markup=False)
        raise typer.Exit(code=1) from None


def _print_case_line(case: Any) -> None:
    console.print(f"{case.case_id} {case.status.label} owner={case.owner or '-'}", markup=False)


@cases_app.command("open")
def open_cases(
    run: Annotated[
        list[Path], typer.Option("--run", help="Output folder of `tagsweep reconcile run`.")
    ],
    store: StoreOpt = None,
    config: ConfigOpt = None,
    actor: ActorOpt = None,
    key: KeyOpt = None,
) -> None:
    """Open cases from a run's variance log.

    A new variance opens a case, a recurring one is linked to its case, and a case whose
    variance the run no longer shows is proposed for resolution with the run as evidence.
    """
    with open_store(store, config, create=True, sign=True, key=key) as cases:
        who = actor_name(actor, cases)
        for folder in run:
            summary = cases.import_run(folder, actor=who)
            if summary.already_imported:
                console.print(f"run {summary.run_id}: already imported, nothing changed")
                continue
            console.print(
                f"run {summary.run_id} ({summary.run_date}): {len(summary.opened)} opened, "
                f"{len(summary.linked)} linked, {len(summary.reopened)} reopened, "
                f"{len(summary.proposed)} proposed for resolution",
                markup=False,
            )


@cases_app.command("list")
def list_cases(
    *,
    overdue: Annotated[bool, typer.Option(help="Only cases past their SLA due date.")] = False,
    variance_type: Annotated[
        str | None, typer.Option("--type", help="Only this variance type.")
    ] = None,
    owner: Annotated[str | None, typer.Option(help="Only cases of this owner.")] = None,
    status: Annotated[str | None, typer.Option(help="Only cases in this status.")] = None,
    proposed: Annotated[
        bool, typer.Option(help="Only cases a later count proposes to resolve.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of a table.")] = False,
    store: StoreOpt = None,
    config: ConfigOpt = None,
) -> None:
    """List cases, oldest first."""
    with open_store(store, config) as cases:
        found = cases.list_cases(
            overdue=overdue,
            variance_type=variance_type,
            owner=owner,
            status=status,
            proposed=proposed,
        )
    if as_json:
        for case in found:
            console.print(json.dumps(case.as_dict(), ensure_ascii=False), markup=False)
        return
    table = Table("case", "type", "pri", "asset", "status", "owner", "SLA due", "runs", "note")
    for case in found:
        table.add_row(
            case.case_id,
            case.variance_type,
            case.priority or "",
            case.asset_key or "",
            case.status.label,
            case.owner or "-",
            case.sla_due or "",
            str(case.occurrences),
            f"resolved by {case.proposed_resolution_run}?" if case.proposed_resolution_run else "",
        )
    console.print(table)
    console.print(f"{len(found)} case(s)")


@cases_app.command("show")
def show_case(
    case_id: Annotated[str, typer.Argument(help="Case id, e.g. C-000001.")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
    store: StoreOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Show one case: variance, status, notes, evidence, approvals, runs."""
    with open_store(store, config) as cases:
        detail = cases.detail(case_id)
    data = {
        **detail.case.as_dict(),
        "runs": detail.runs,
        "notes": detail.notes,
        "evidence": detail.evidence,
        "approvals": detail.approvals,
        "corrections": detail.corrections,
        "pending_approval_steps": detail.pending_steps,
    }
    if as_json:
        console.print(json.dumps(data, ensure_ascii=False, indent=2), markup=False)
        return
    for key, value in data.items():
        if isinstance(value, list):
            console.print(f"{key}:", markup=False)
            for item in value:
                console.print(f"  - {item}", markup=False)
        elif value is not None:
            console.print(f"{key}: {value}", markup=False)


@cases_app.command("assign")
def assign(
    case_id: Annotated[str, typer.Argument()],
    owner: Annotated[str, typer.Argument(help="Who investigates the case.")],
    *,
    reason: Annotated[str | None, typer.Option()] = None,
    store: StoreOpt = None,
    config: ConfigOpt = None,
    actor: ActorOpt = None,
    key: KeyOpt = None,
) -> None:
    """Give a case an owner; an open case moves to investigation."""
    with open_store(store, config, sign=True, key=key) as cases:
        _print_case_line(
            cases.assign(case_id, owner, actor=actor_name(actor, cases), reason=reason)
        )


@cases_app.command("note")
def note(
    case_id: Annotated[str, typer.Argument()],
    text: Annotated[str, typer.Argument(help="What was checked or learned.")],
    *,
    store: StoreOpt = None,
    config: ConfigOpt = None,
    actor: ActorOpt = None,
    key: KeyOpt = None,
) -> None:
    """Add a note to a case."""
    with open_store(store, config, sign=True, key=key) as cases:
        _print_case_line(cases.note(case_id, text, actor=actor_name(actor, cases)))


@cases_app.command("attach")
def attach(
    case_id: Annotated[str, typer.Argument()],
    ref: Annotated[str, typer.Argument(help="Evidence file (hashed and kept) or URL.")],
    *,
    note_text: Annotated[
        str | None, typer.Option("--note", help="What the evidence shows.")
    ] = None,
    store: StoreOpt = None,
    config: ConfigOpt = None,
    actor: ActorOpt = None,
    key: KeyOpt = None,
) -> None:
    """Attach evidence: a file (hashed and kept) or a URL.

    A disposal certificate, a return log, a photo of a serial plate, a ticket.
    """
    with open_store(store, config, sign=True, key=key) as cases:
        info = cases.attach(case_id, ref, actor=actor_name(actor, cases), note=note_text)
    digest = f" sha256 {info['sha256']}" if info["sha256"] else ""
    console.print(f"{case_id} evidence {info['kind']} {info['ref']}{digest}", markup=False)


@cases_app.command("resolve")
def resolve(
    case_id: Annotated[str, typer.Argument()],
    *,
    reason: Annotated[str, typer.Option(help="Why: the confirmed cause.")],
    outcome: Annotated[
        str, typer.Option(help="resolved | false_positive | written_off (requests a write-off).")
    ] = "resolved",
    set_fields: Annotated[
        list[str] | None,
        typer.Option("--set", help="Register correction FIELD=VALUE (repeatable)."),
    ] = None,
    accept_found: Annotated[
        bool, typer.Option(help="Correct the register to what the count found.")
    ] = False,
    store: StoreOpt = None,
    config: ConfigOpt = None,
    actor: ActorOpt = None,
    key: KeyOpt = None,
) -> None:
    """Close a case with its cause and corrections, or request a write-off."""
    from tagsweep.engine.cases import parse_assignments

    with open_store(store, config, sign=True, key=key) as cases:
        case = cases.resolve(
            case_id,
            outcome,
            actor=actor_name(actor, cases),
            reason=reason,
            corrections=parse_assignments(set_fields or []),
            accept_found=accept_found,
        )
        _print_case_line(case)


@cases_app.command("approve")
def approve(
    case_id: Annotated[str, typer.Argument()],
    *,
    reject: Annotated[bool, typer.Option(help="Reject the write-off request.")] = False,
    reason: Annotated[str | None, typer.Option()] = None,
    store: StoreOpt = None,
    config: ConfigOpt = None,
    actor: ActorOpt = None,
    key: KeyOpt = None,
) -> None:
    """Sign the next step of a case's write-off approval chain (or reject it)."""
    with open_store(store, config, sign=True, key=key) as cases:
        case = cases.approve(case_id, actor=actor_name(actor, cases), reject=reject, reason=reason)
        pending = cases.detail(case_id).pending_steps
        _print_case_line(case)
        if pending:
            console.print(f"awaiting: {', '.join(pending)}")


@cases_app.command("export")
def export(
    out: Annotated[Path, typer.Argument(help="File to write.")],
    fmt: Annotated[str, typer.Option("--format", help="csv | jsonl")] = "csv",
    store: StoreOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Export every case for the reconciliation record."""
    with open_store(store, config) as cases:
        path = cases.export(out, fmt)
        head = cases.recorded_head()
    console.print(f"wrote {path} (audit head seq {head.seq} {head.hash})", markup=False)
