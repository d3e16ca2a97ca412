"""``tagsweep llrp …``: reader diagnostics that need no running gateway."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

if TYPE_CHECKING:
    from tagsweep.domain import ReadBatch

llrp_app = typer.Typer(help="LLRP reader diagnostics.", no_args_is_help=True)
_console = Console(highlight=False, soft_wrap=True, emoji=False)
_SHOWN_PROBLEMS = 5


@llrp_app.command("decode")
def decode_command(
    capture: Annotated[
        Path,
        typer.Argument(
            help="A pcap/pcapng capture (tcpdump -w FILE port 5084) or the raw bytes a "
            "reader sent on one connection.",
            exists=True,
            dir_okay=False,
        ),
    ],
    port: Annotated[int, typer.Option("--port", help="The reader's LLRP port.")] = 5084,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Write every read to this .parquet or .csv file."),
    ] = None,
    validate: Annotated[
        bool, typer.Option("--validate", help="Also decode every report with sllurp, compare.")
    ] = False,
) -> None:
    """Decode what a reader sent, as the gateway's driver would: messages, reads and
    every problem with its stream offset. Exit status 1 if sllurp disagrees somewhere."""
    import numpy as np

    from tagsweep.drivers.llrp.capture import CaptureError, decode_stream, read_capture

    if out is not None and out.suffix.lower() not in {".parquet", ".csv"}:
        raise typer.BadParameter("--out must end in .parquet or .csv", param_hint="--out")
    try:
        streams = read_capture(capture, port)
    except CaptureError as exc:
        _console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(code=2) from None
    if not streams:
        _console.print(f"{capture}: no TCP data from port {port} in this capture")
        raise typer.Exit(code=1)
    decoded = [decode_stream(s, reader_id=i, validate=validate) for i, s in enumerate(streams)]
    for d in decoded:
        s = d.stream
        line = f"[bold]{s.name}[/bold]: {len(s.data):,} bytes"
        if s.holes:
            line += f", {s.holes} hole(s) where the capture lost {s.missing_bytes:,} bytes"
        if s.retransmitted_bytes:
            line += f", {s.retransmitted_bytes:,} bytes retransmitted (kept once)"
        _console.print(line)
        _console.print(
            "  messages: " + ", ".join(f"{n} {k}" for k, n in d.messages.most_common())
            if d.messages
            else "  messages: none"
        )
        reads = d.reads
        if len(reads):
            antennas = ",".join(str(a) for a in np.unique(reads["antenna"]))
            first = np.datetime64(int(reads["first_seen_us"].min()), "us")
            last = np.datetime64(int(reads["last_seen_us"].max()), "us")
            _console.print(
                f"  reads {len(reads):,} · {len(np.unique(reads['epc'])):,} EPCs · "
                f"antennas {antennas} · {first} → {last} UTC"
            )
        else:
            _console.print("  reads 0")
        if d.problems:
            kinds = Counter[str]()
            for p in d.problems:
                kinds[p.kind] += p.count
            _console.print("  problems: " + ", ".join(f"{k} {n}" for k, n in kinds.items()))
            for p in d.problems[:_SHOWN_PROBLEMS]:
                _console.print(f"    {p.kind}: {p.detail}")
        if d.skipped_parameters:
            _console.print(f"  {d.skipped_parameters:,} vendor parameters skipped (unused)")
        if d.trailing_bytes:
            _console.print(f"  {d.trailing_bytes:,} bytes of an incomplete last message")
        if validate:
            _console.print(
                f"  sllurp: {d.validated_reports:,} reports compared, "
                f"{d.sllurp_disagreements} disagree"
            )
    if out is not None:
        _write_reads(out, [d.reads for d in decoded], [d.stream.name for d in decoded])
        _console.print(f"reads → {out}")
    if any(d.sllurp_disagreements for d in decoded):
        raise typer.Exit(code=1)


def _write_reads(out: Path, batches: list[ReadBatch], names: list[str]) -> None:
    """Every read with the stream it came from; EPCs as hex text."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    reads = np.concatenate(batches)
    stream = [name for name, b in zip(names, batches, strict=True) for _ in range(len(b))]
    numeric = (
        "antenna", "rssi", "first_seen_us", "last_seen_us", "seen_count", "phase", "doppler_hz",
    )  # fmt: skip
    table = pa.table(
        {
            "stream": pa.array(stream, pa.string()),
            "epc": pa.array(np.char.decode(reads["epc"], "ascii"), pa.string()),
            **{name: pa.array(reads[name]) for name in numeric},
        }
    )
    if out.suffix.lower() == ".csv":
        pacsv.write_csv(table, out)
    else:
        pq.write_table(table, out)
