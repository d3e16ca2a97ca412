"""Which text encoding an export is in, and its text decoded line by line.

Exports reach the engine from Excel on Windows (windows-1252), from APIs (UTF-8), from
PowerShell (UTF-16 with a BOM), and sometimes as a UTF-8 file with a few lines pasted
in from elsewhere. :func:`detect_encoding` tells these apart without guessing a whole
file wrong because of one line, :func:`decode_lines` decodes each line in the encoding
it is in, and :func:`encoding_warning` is what the user is told about mixed files.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class TextEncoding:
    """How a text export is decoded: ``encoding`` for the whole file, except the
    ``foreign_lines`` (a UTF-8 file with a few windows-1252 lines), decoded as
    ``FALLBACK_ENCODING`` one by one."""

    encoding: str
    foreign_lines: tuple[int, ...] = ()

    @property
    def label(self) -> str:
        if not self.foreign_lines:
            return self.encoding
        return f"{self.encoding} ({len(self.foreign_lines)} line(s) {FALLBACK_ENCODING})"


#: What a byte that is not UTF-8 most likely is: Excel on Windows in Western Europe and
#: the Americas saves "CSV" as windows-1252 (a superset of latin-1 with '€' at 0x80).
FALLBACK_ENCODING = "windows-1252"


def _single_byte(data: bytes) -> str:
    try:
        data.decode(FALLBACK_ENCODING)
    except UnicodeDecodeError:
        return "latin-1"  # bytes windows-1252 leaves undefined (0x81, 0x8D, ...)
    return FALLBACK_ENCODING


def detect_encoding(path: Path) -> TextEncoding:
    """UTF-16 by BOM; UTF-8 (with or without BOM) when every byte fits; windows-1252
    (latin-1 where it has no character) when no line is UTF-8 beyond ASCII; and when
    most non-ASCII lines are UTF-8 but a few are not, UTF-8 with those lines read as
    windows-1252 and named, instead of a whole file of mojibake."""
    with path.open("rb") as fh:
        head = fh.read(4)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return TextEncoding("utf-16")
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        pass
    else:
        return TextEncoding("utf-8")
    utf8_lines = 0
    foreign: list[int] = []
    with path.open("rb") as fh:
        for number, line in enumerate(fh, start=1):
            if line.isascii():
                continue
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                foreign.append(number)
            else:
                utf8_lines += 1
    if utf8_lines == 0:
        return TextEncoding(_single_byte(path.read_bytes()))
    return TextEncoding("utf-8", tuple(foreign))


def decode_lines(path: Path, enc: TextEncoding) -> Iterator[str]:
    """The file's text, line by line, each line in the encoding it is in."""
    if not enc.foreign_lines:
        with path.open(encoding=enc.encoding, newline="") as fh:
            yield from fh
        return
    foreign = set(enc.foreign_lines)
    with path.open("rb") as fh:
        for number, line in enumerate(fh, start=1):
            if number in foreign:
                yield line.decode(_single_byte(line), errors="replace")
            else:
                yield line.decode("utf-8-sig" if number == 1 else "utf-8")


def encoding_warning(source: str, path: Path, enc: TextEncoding) -> str | None:
    """What to tell the user about a UTF-8 file with lines in another encoding."""
    if not enc.foreign_lines:
        return None
    shown = ", ".join(str(n) for n in enc.foreign_lines[:10])
    more = f" and {len(enc.foreign_lines) - 10} more" if len(enc.foreign_lines) > 10 else ""
    return (
        f"source {source}: {path.name} is UTF-8 but line(s) {shown}{more} are not; they "
        f"were read as {FALLBACK_ENCODING} (one such byte would otherwise turn every accent "
        "in the file into mojibake): check those values, and export the file as UTF-8"
    )
