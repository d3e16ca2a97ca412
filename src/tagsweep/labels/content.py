"""What each label's codes hold, checked against the rules a scanner reads them by.

An asset label's QR code holds the asset tag, or — when a GS1 company prefix is given —
the asset's GIAI (AI 8004: company prefix followed by the tag's digits, the same identity
the GIAI-96 EPC on its RFID inlay carries) as a GS1 Digital Link URI or a GS1 element
string in its human-readable form. Its Code 128 holds the asset tag.

A location label holds the text that the barcode interpretation
(:class:`~tagsweep.drivers.scanparse.ScanInterpreter`) turns into that location: the
``label`` of its ``[[locations]]`` entry when it has one, else the scanner's
``location_prefix`` followed by the path. Every payload is run through the same
interpreter before anything is printed; a label the count would not understand is never
produced silently.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from tagsweep.domain import Location, ScanKind
from tagsweep.drivers.barcode import scan_rules_for
from tagsweep.drivers.scanparse import ScanContent, ScanInterpreter, ScanRules
from tagsweep.epc import (
    DEFAULT_ASSET_TAG_FORMAT,
    asset_ref_for_tag,
    giai96_for_asset_tag,
)

#: Resolver of GS1 Digital Link URIs when no own domain is given.
DEFAULT_DIGITAL_LINK_BASE: Final = "https://id.gs1.org"


class QrContent(enum.StrEnum):
    """What an asset label's QR code holds."""

    TAG = "tag"  # the asset tag text
    DIGITAL_LINK = "dl"  # https://id.gs1.org/8004/<GIAI>
    ELEMENT_STRING = "gs1"  # (8004)<GIAI>


class LabelKind(enum.StrEnum):
    ASSET = "asset"
    LOCATION = "location"


@dataclass(frozen=True, slots=True)
class Label:
    """One label: its codes' payloads and the lines printed under them."""

    kind: LabelKind
    title: str  # the asset tag, or the location path
    qr: str
    code128: str | None  # None when the text cannot be a Code 128 (not Latin-1)
    lines: tuple[str, ...] = ()  # model, location … (may be empty)
    epc: str | None = None  # GIAI-96 EPC for an RFID inlay (asset labels with a prefix)


@dataclass(slots=True)
class LabelProblems:
    """What could not be put on labels as asked; every entry names the row or location."""

    skipped: list[str] = field(default_factory=list)  # no label made
    warnings: list[str] = field(default_factory=list)  # label made, with a caveat

    def extend(self, other: LabelProblems) -> None:
        self.skipped.extend(other.skipped)
        self.warnings.extend(other.warnings)


def giai_for_tag(
    asset_tag: str, company_prefix: str, tag_format: str = DEFAULT_ASSET_TAG_FORMAT
) -> str:
    """The GIAI (AI 8004) of an asset tag: company prefix, then the tag's digits.

    ValueError when the tag has no digits or when ``tag_format`` would not give the same
    tag back from the reference (the count could not map a scan of it to the register).
    """
    ref = asset_ref_for_tag(asset_tag)
    if ref is None:
        raise ValueError(f"asset tag {asset_tag!r} has no digits for a GIAI")
    back = tag_format.format(ref=ref, company_prefix=company_prefix)
    if back.upper() != asset_tag.upper():
        raise ValueError(
            f"asset tag {asset_tag!r} does not follow the tag format {tag_format!r} "
            f"(its reference {ref} gives {back!r})"
        )
    return f"{company_prefix}{ref}"


def _latin1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return all(ord(c) >= 0x20 for c in text)


@dataclass(frozen=True, slots=True)
class LabelMaker:
    """Makes labels whose payloads the count reads back as what they name."""

    rules: ScanRules = field(default_factory=lambda: scan_rules_for(()))
    #: [[locations]] path → label text (the text a scan of the label must carry)
    location_labels: dict[str, str] = field(default_factory=dict)
    company_prefix: str | None = None
    tag_format: str = DEFAULT_ASSET_TAG_FORMAT
    qr_content: QrContent = QrContent.TAG
    digital_link_base: str = DEFAULT_DIGITAL_LINK_BASE

    def _interpret(self, payload: str) -> ScanContent | None:
        result = ScanInterpreter(self.rules).interpret(payload.encode(self.rules.encoding))
        return result if isinstance(result, ScanContent) else None

    def asset(
        self,
        asset_tag: str,
        *,
        model: str | None = None,
        location: str | None = None,
        problems: LabelProblems,
    ) -> Label | None:
        tag = asset_tag.strip()
        if not tag:
            problems.skipped.append("a row without an asset tag")
            return None
        epc: str | None = None
        qr = tag
        if self.company_prefix is not None:
            try:
                giai = giai_for_tag(tag, self.company_prefix, self.tag_format)
                epc = giai96_for_asset_tag(tag, self.company_prefix)
            except ValueError as exc:
                problems.warnings.append(f"{tag}: no GIAI ({exc}); the QR code holds the tag")
            else:
                if self.qr_content is QrContent.DIGITAL_LINK:
                    qr = f"{self.digital_link_base.rstrip('/')}/8004/{giai}"
                elif self.qr_content is QrContent.ELEMENT_STRING:
                    qr = f"(8004){giai}"
        content = self._interpret(tag)
        if content is None or content.kind is ScanKind.LOCATION:
            problems.skipped.append(
                f"{tag}: a scan of this tag would not count as an asset "
                f"({'a location label' if content else 'rejected by the scan rules'})"
            )
            return None
        if content.kind not in (ScanKind.ASSET_TAG, ScanKind.SERIAL):
            problems.warnings.append(
                f"{tag}: does not match the scanner's asset_tag_pattern; "
                "scans of it are recorded as unrecognised"
            )
        if qr != tag:
            back = self._interpret(qr)
            if back is None or back.kind is not ScanKind.GIAI:
                problems.warnings.append(f"{tag}: the QR payload {qr!r} does not read as a GIAI")
        code128 = tag if _latin1(tag) else None
        if code128 is None:
            problems.warnings.append(f"{tag}: not Latin-1, so no Code 128 (QR only)")
        lines = tuple(x for x in (model, location) if x)
        return Label(LabelKind.ASSET, tag, qr, code128, lines, epc)

    def location_payload(self, path: str) -> str:
        """The text of ``path``'s label; ValueError when no text would read as it."""
        path = Location(path).path
        candidates: list[str] = []
        if path in self.location_labels:
            candidates.append(self.location_labels[path])
        candidates.extend(label for label, p in self.rules.locations.items() if p == path)
        if self.rules.location_prefix:
            candidates.append(f"{self.rules.location_prefix}{path}")
        for payload in candidates:
            content = self._interpret(payload)
            if content is not None and content.kind is ScanKind.LOCATION and content.value == path:
                return payload
        raise ValueError(
            f"location {path!r}: no label text reads as this location under the scan rules "
            "(set location_prefix, or give it a label in [[locations]])"
        )

    def location(self, path: str, *, problems: LabelProblems) -> Label | None:
        try:
            payload = self.location_payload(path)
        except ValueError as exc:
            problems.skipped.append(str(exc))
            return None
        code128 = payload if _latin1(payload) else None
        if code128 is None:
            problems.warnings.append(f"location {path!r}: not Latin-1, so no Code 128 (QR only)")
        return Label(LabelKind.LOCATION, Location(path).path, payload, code128, ("Location",))


def location_paths(paths: Sequence[str], *, with_parents: bool = True) -> list[str]:
    """The distinct locations of ``paths`` (with every parent below the top level when
    ``with_parents``: the rooms of the racks), sorted so a room precedes its racks."""
    out: set[str] = set()
    for raw in paths:
        try:
            parts = Location(raw).path.split("/")
        except ValueError:
            continue
        out.add("/".join(parts))
        if with_parents:
            for depth in range(2, len(parts)):
                out.add("/".join(parts[:depth]))
    return sorted(out, key=lambda p: p.split("/"))
