"""``tagsweep audit …``: what an auditor runs — verify, anchor, seal, extract.

``verify`` checks the hash chain, every signature against ``allowed_signers``, the
workflow's rules (distinct approvers with the right role, no self-approval, the
investigation window), the case store against a replay of the log, the anchors given
with ``--anchor``, and the kept evidence files; it names the first failing entry and
why. ``anchor`` copies the head out of the store (a file, a retained MQTT message);
``seal`` signs once over a log written before signing was set up; ``extract`` writes one
entry's signed message and signature for ``ssh-keygen -Y verify``.
"""

from __future__ import annotations

import json
from datetime import UTC
from pathlib import Path
from typing import Annotated

import typer

from tagsweep.engine.cases_cli import (
    ActorOpt,
    ConfigOpt,
    KeyOpt,
    StoreOpt,
    cases_settings,
    console,
    err_console,
    open_store,
)

audit_app = typer.Typer(
    help="Verify, anchor and seal the signed, hash-chained audit log.", no_args_is_help=True
)

AnchorOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--anchor",
        help="Anchor file (`tagsweep audit anchor --out`), a run's manifest.json, or a run "
        "folder: the log must still hold that head at that position. Repeatable.",
    ),
]


@audit_app.command("verify")
def verify(
    store: StoreOpt = None,
    config: ConfigOpt = None,
    log: Annotated[
        Path | None,
        typer.Option(help="Verify this audit log file alone (chain and signatures only)."),
    ] = None,
    anchor: AnchorOpt = None,
) -> None:
    """Check the chain, signatures, roles and rules, the store against the log, anchors and
    evidence; name the first failing entry and why (exit 1 if anything fails)."""
    from tagsweep.engine.allowed_signers import AllowedSigners
    from tagsweep.engine.audit import AuditLog
    from tagsweep.engine.audit_anchor import AnchorError, check_anchor, load_anchor
    from tagsweep.engine.audit_signed import check_signatures

    try:
        anchors = [load_anchor(a) for a in anchor or []]
    except AnchorError as exc:
        err_console.print(f"error: {exc}", markup=False)
        raise typer.Exit(code=2) from None
    if log is not None:
        if not log.is_file():
            err_console.print(f"error: {log} does not exist", markup=False)
            raise typer.Exit(code=2)
        settings = cases_settings(config)
        audit = AuditLog(log)
        report = audit.verify()
        problems = []
        if report.ok:
            signers = None
            if settings.allowed_signers is not None:
                signers = AllowedSigners.load(settings.allowed_signers)
            findings, _ = check_signatures(audit.entries(), signers, settings.auditors)
            problems = [f.describe() for f in findings]
            problems += [p for a in anchors if (p := check_anchor(audit, a))]
        (console if report.ok else err_console).print(report.describe(), markup=False)
        for problem in problems:
            err_console.print(f"FAILED {problem}", markup=False)
        if not report.ok or problems:
            raise typer.Exit(code=1)
        return
    with open_store(store, config) as cases:
        result = cases.check_audit(anchors)
        evidence = cases.verify_evidence()
        if cases.signers is not None:
            for problem in cases.signers.problems:
                err_console.print(f"warning: allowed_signers: {problem}", markup=False)
    (console if result.ok else err_console).print(result.describe(), markup=False)
    for finding in sorted(result.findings, key=lambda f: (f.seq is None, f.seq or 0))[:50]:
        err_console.print(f"  {finding.describe()}", markup=False)
    if len(result.findings) > 50:
        err_console.print(f"  … {len(result.findings) - 50} more", markup=False)
    for problem in evidence:
        err_console.print(f"EVIDENCE {problem}", markup=False)
    if result.signatures.signed == 0 and result.chain.ok and result.chain.entries:
        err_console.print(
            "warning: no entry is signed: actors are claimed, not proven (set [engine.cases] "
            "allowed_signers, then `tagsweep audit seal`)",
            markup=False,
        )
    if not result.ok or evidence:
        raise typer.Exit(code=1)


@audit_app.command("anchor")
def anchor_command(
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the head here (keep it elsewhere).")
    ] = None,
    publish: Annotated[
        str | None,
        typer.Option(
            "--publish", help="Publish the head as a retained message: mqtt://HOST[:PORT]/TOPIC"
        ),
    ] = None,
    store: StoreOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Copy the audit chain's head out of the case store, to check later with
    `audit verify --anchor`."""
    from tagsweep.engine.audit_anchor import AnchorError, publish_mqtt, write_anchor

    with open_store(store, config) as cases:
        report = cases.verify_audit()
        if not report.ok:
            err_console.print(f"error: not anchoring a broken log: {report.describe()}")
            raise typer.Exit(code=1)
        head, log = report.head, cases.audit.path
    console.print(f"audit head seq {head.seq} hash {head.hash}", markup=False)
    try:
        if out is not None:
            console.print(f"wrote {write_anchor(head, log, out)}", markup=False)
        if publish is not None:
            topic = publish_mqtt(head, log, publish)
            console.print(f"published (retained) on {topic}", markup=False)
    except (AnchorError, OSError) as exc:
        err_console.print(f"error: {exc}", markup=False)
        raise typer.Exit(code=1) from None


@audit_app.command("seal")
def seal(
    reason: Annotated[str | None, typer.Option()] = None,
    store: StoreOpt = None,
    config: ConfigOpt = None,
    actor: ActorOpt = None,
    key: KeyOpt = None,
) -> None:
    """Sign once over a log written before signing was set up (an auditor's key)."""
    with open_store(store, config, sign=True, key=key) as cases:
        seq = cases.seal(actor=actor, reason=reason)
    console.print(f"sealed: entry seq {seq} covers every entry before it", markup=False)


@audit_app.command("extract")
def extract(
    seq: Annotated[int, typer.Argument(help="Entry to extract.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for entry-SEQ.msg and .sig.")],
    store: StoreOpt = None,
    config: ConfigOpt = None,
    log: Annotated[Path | None, typer.Option(help="An audit log file instead of a store.")] = None,
) -> None:
    """Write one entry's signed message and signature, and the ssh-keygen command that
    checks them with nothing but OpenSSH."""
    from tagsweep.engine.audit import AUDIT_NAMESPACE, AuditLog, signed_message

    allowed = "ALLOWED_SIGNERS"
    if log is None:
        with open_store(store, config) as cases:
            log = cases.audit.path
            if cases.signers is not None:
                allowed = str(cases.signers.path)
    entry = next((e for e in AuditLog(log).entries() if e.seq == seq), None)
    if entry is None or entry.sig is None:
        err_console.print(f"error: {log} has no signed entry seq {seq}", markup=False)
        raise typer.Exit(code=1)
    out.mkdir(parents=True, exist_ok=True)
    msg, sig = out / f"entry-{seq}.msg", out / f"entry-{seq}.sig"
    msg.write_bytes(signed_message(entry.as_dict()))
    sig.write_text(entry.sig, encoding="utf-8")
    when = entry.when.astimezone(UTC).strftime("%Y%m%d%H%M%S")
    console.print(json.dumps(entry.as_dict(), ensure_ascii=False), markup=False)
    console.print(
        f"ssh-keygen -Y verify -f {allowed} -I {entry.actor} -n {AUDIT_NAMESPACE} "
        f"-s {sig} -Overify-time={when}Z < {msg}",
        markup=False,
    )
