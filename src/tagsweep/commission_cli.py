"""``tagsweep tag …``: commission RFID tags (see :mod:`tagsweep.commission`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

tag_app = typer.Typer(help="Commission RFID tags: write an asset's EPC.", no_args_is_help=True)


def _password(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        value = int(text, 16)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not 8 hex digits") from None
    if not 0 <= value < 1 << 32:
        raise typer.BadParameter(f"{text!r} is not 8 hex digits")
    return value


@tag_app.command("encode")
def encode(
    *,
    reader: Annotated[str, typer.Option("--reader", help="llrp:// or llrps:// URL.")],
    asset_tag: Annotated[
        list[str] | None, typer.Option("--asset-tag", help="Asset tag to encode, e.g. AST-000123.")
    ] = None,
    register: Annotated[
        Path | None,
        typer.Option("--from", help="CSV with an asset_tag column: encode each in turn."),
    ] = None,
    log: Annotated[Path, typer.Option("--log", help="CSV log (appended).")] = Path(
        "tag-encode-log.csv"
    ),
    company_prefix: Annotated[
        str | None, typer.Option("--company-prefix", help="GS1 company prefix of the GIAI-96.")
    ] = None,
    access_password: Annotated[
        str | None, typer.Option("--access-password", help="The tag's access password (hex).")
    ] = None,
    new_access_password: Annotated[
        str | None,
        typer.Option("--new-access-password", help="Write this access password (hex)."),
    ] = None,
    lock: Annotated[
        bool, typer.Option("--lock", help="Write-lock the EPC and the password.")
    ] = False,
    no_prompt: Annotated[
        bool, typer.Option("--no-prompt", help="Do not wait for Enter before each tag.")
    ] = False,
) -> None:
    """Write the GIAI-96 EPC of an asset tag onto the one tag in the reader's field,
    verify it by reading it back, and log the result (asset tag, old EPC, new EPC, TID)."""
    from tagsweep.commission import EncodeOptions, encode_batch, read_register
    from tagsweep.drivers.llrp.access import AccessError
    from tagsweep.epc import DEFAULT_COMPANY_PREFIX

    tags = list(asset_tag or [])
    if register is not None:
        try:
            tags += read_register(register)
        except OSError as exc:
            typer.echo(f"error: {register}: {exc.strerror or exc}", err=True)
            raise typer.Exit(code=2) from None
    if not tags:
        raise typer.BadParameter("give --asset-tag or --from")
    options = EncodeOptions(
        company_prefix=company_prefix or DEFAULT_COMPANY_PREFIX,
        access_password=_password(access_password) or 0,
        new_access_password=_password(new_access_password),
        lock=lock,
    )
    batch = len(tags) > 1 and not no_prompt

    def place(tag: str) -> None:
        if batch:
            typer.prompt(f"place the tag for {tag} alone on the antenna, then Enter", default="")

    try:
        results = encode_batch(reader, tags, options, log=log, before_each=place)
    except (OSError, AccessError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from None
    for r in results:
        typer.echo(
            f"{r.asset_tag}: {r.result} ({r.old_epc or '-'} → {r.new_epc}, TID {r.tid or '-'})"
        )
    typer.echo(f"log: {log}", err=True)
    if not all(r.ok for r in results):
        raise typer.Exit(code=1)
