"""``tagsweep labels``: print asset and location labels from the register."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

#: How many skipped rows and warnings are listed one by one before a count.
SHOWN_PROBLEMS = 10


class OutputFormat(enum.StrEnum):
    PDF = "pdf"
    ZPL = "zpl"


def labels_command(
    register: Annotated[
        Path | None,
        typer.Argument(
            help="Register: a CSV with an asset_tag column, a run's register.parquet, a "
            "golden register, or the folder holding one."
        ),
    ] = None,
    *,
    out: Annotated[Path, typer.Option("--out", "-o", help="PDF or ZPL file to write.")] = Path(
        "labels.pdf"
    ),
    where: Annotated[
        list[str] | None,
        typer.Option(
            "--where",
            help="Select rows: FIELD=VALUE or FIELD!=VALUE, * and ? wildcards; location= "
            "takes everything below. Repeat: all must hold.",
        ),
    ] = None,
    locations: Annotated[
        bool,
        typer.Option(
            "--locations",
            help="Location labels (racks and rooms of the selected rows) instead of asset labels.",
        ),
    ] = False,
    location: Annotated[
        list[str] | None,
        typer.Option("--location", help="A location to make a label for (repeatable)."),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="Gateway configuration: its scanner's location_prefix and [[locations]] "
            "labels decide what a location label holds.",
        ),
    ] = None,
    scanner: Annotated[
        str | None, typer.Option("--scanner", help="Scanner whose rules to follow.")
    ] = None,
    company_prefix: Annotated[
        str | None,
        typer.Option(
            "--company-prefix",
            help="GS1 company prefix: the QR code holds the GIAI (AI 8004) and ZPL can "
            "encode the GIAI-96 EPC.",
        ),
    ] = None,
    qr: Annotated[
        str | None,
        typer.Option(
            "--qr", help="QR content: tag, dl (GS1 Digital Link) or gs1 (element string)."
        ),
    ] = None,
    dl_base: Annotated[
        str, typer.Option("--dl-base", help="Digital Link domain.")
    ] = "https://id.gs1.org",
    tag_format: Annotated[
        str | None,
        typer.Option("--tag-format", help="How a GIAI reference maps back to a tag."),
    ] = None,
    stock: Annotated[
        str, typer.Option("--stock", help="l7160, l7163, l7651, 5160, 5163 or roll.")
    ] = "l7160",
    page: Annotated[str | None, typer.Option("--page", help="A4, letter or WxH mm.")] = None,
    grid: Annotated[str | None, typer.Option("--grid", help="COLUMNSxROWS.")] = None,
    label_size: Annotated[str | None, typer.Option("--label-size", help="WxH mm.")] = None,
    margin: Annotated[str | None, typer.Option("--margin", help="TOP,LEFT mm.")] = None,
    pitch: Annotated[str | None, typer.Option("--pitch", help="X,Y mm between labels.")] = None,
    output_format: Annotated[
        OutputFormat, typer.Option("--format", help="pdf, or zpl for Zebra printers.")
    ] = OutputFormat.PDF,
    dpi: Annotated[int, typer.Option("--dpi", help="ZPL: 203, 300 or 600.")] = 203,
    rfid: Annotated[
        bool, typer.Option("--rfid", help="ZPL: write the GIAI-96 EPC to the RFID inlay (^RFW).")
    ] = False,
) -> None:
    """Print labels: a QR code, a Code 128 and the tag, model and location of each asset
    (or, with --locations, the rack and room labels that set a count's location)."""
    from tagsweep.config import ConfigError, load_config
    from tagsweep.domain import Location
    from tagsweep.drivers.barcode import scan_rules_for
    from tagsweep.epc import DEFAULT_ASSET_TAG_FORMAT
    from tagsweep.labels.content import (
        Label,
        LabelMaker,
        LabelProblems,
        QrContent,
        location_paths,
    )
    from tagsweep.labels.pdf import render_pdf
    from tagsweep.labels.source import RegisterError, read_assets
    from tagsweep.labels.stock import make_stock
    from tagsweep.labels.zpl import render_zpl

    def fail(message: str, code: int = 2) -> typer.Exit:
        err_console.print(f"error: {message}", markup=False)
        return typer.Exit(code=code)

    try:
        cfg = load_config(config) if config else None
    except ConfigError as exc:
        for problem in exc.problems:
            err_console.print(f"error: {problem}", markup=False)
        raise typer.Exit(code=2) from None
    try:
        rules = scan_rules_for(cfg.scanners if cfg else (), cfg.locations if cfg else (), scanner)
        layout = make_stock(
            stock, page=page, grid=grid, label=label_size, margin=margin, pitch=pitch
        )
        content = (
            QrContent(qr) if qr else (QrContent.DIGITAL_LINK if company_prefix else QrContent.TAG)
        )
    except ValueError as exc:
        raise fail(str(exc)) from None
    if content is not QrContent.TAG and not company_prefix:
        raise fail(f"--qr {content.value} needs --company-prefix (the GIAI is built from it)")
    if company_prefix is not None and not (
        company_prefix.isdigit() and 6 <= len(company_prefix) <= 12
    ):
        raise fail(f"--company-prefix {company_prefix!r}: expected 6-12 digits")
    if rfid and output_format is not OutputFormat.ZPL:
        raise fail("--rfid goes with --format zpl")
    if rfid and not company_prefix:
        raise fail("--rfid needs --company-prefix (the EPC is a GIAI-96)")
    default_format = (
        cfg.engine.giai_asset_tag_format if cfg is not None else DEFAULT_ASSET_TAG_FORMAT
    )
    maker = LabelMaker(
        rules=rules,
        location_labels={
            loc.path: loc.label for loc in (cfg.locations if cfg else ()) if loc.label
        },
        company_prefix=company_prefix,
        tag_format=tag_format or default_format,
        qr_content=content,
        digital_link_base=dl_base,
    )
    problems = LabelProblems()
    labels: list[Label] = []
    rows = []
    if register is not None:
        try:
            rows = read_assets(register, where or ())
        except RegisterError as exc:
            raise fail(str(exc)) from None
    elif not (locations or location):
        raise fail("give a REGISTER, or --location PATH for location labels")
    if locations or location:
        paths = list(location or [])
        if locations:
            paths.extend(location_paths([r.location for r in rows if r.location]))
        seen: set[str] = set()
        for path in paths:
            try:
                key = Location(path).path
            except ValueError as exc:
                problems.skipped.append(f"location {path!r}: {exc}")
                continue
            if key in seen:
                continue
            seen.add(key)
            made = maker.location(key, problems=problems)
            if made is not None:
                labels.append(made)
    else:
        for row in rows:
            if not row.asset_tag:
                problems.skipped.append(f"{register} row {row.line}: no asset tag")
                continue
            made = maker.asset(
                row.asset_tag, model=row.model, location=row.location, problems=problems
            )
            if made is not None:
                labels.append(made)
    for kind, entries in (("skipped", problems.skipped), ("warning", problems.warnings)):
        for entry in entries[:SHOWN_PROBLEMS]:
            err_console.print(f"{kind}: {entry}", markup=False)
        if len(entries) > SHOWN_PROBLEMS:
            err_console.print(f"{kind}: … and {len(entries) - SHOWN_PROBLEMS} more")
    if not labels:
        raise fail("no labels to print (nothing selected, or every row skipped)", code=1)
    try:
        if output_format is OutputFormat.ZPL:
            text = render_zpl(
                labels,
                width_mm=layout.label_w,
                height_mm=layout.label_h,
                dpi=dpi,
                rfid=rfid,
            )
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text, encoding="utf-8")
            where_to = f"{len(labels)} ZPL formats at {dpi} dpi"
        else:
            pages = render_pdf(labels, layout, out)
            where_to = f"{pages} page(s) of {layout.name} ({layout.columns}x{layout.rows})"
    except (ValueError, OSError) as exc:
        raise fail(str(exc)) from None
    kind = "location" if (locations or location) else "asset"
    console.print(
        f"{len(labels)} {kind} label(s) → {out}: {where_to}; "
        f"{len(problems.skipped)} skipped, {len(problems.warnings)} warning(s)",
        markup=False,
    )
