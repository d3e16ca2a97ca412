"""Core domain types shared by the daemon, the drivers, the engine and the simulators.

Everything that crosses a module boundary is defined here once, with the names of the
glossary: a *read* (one tag report, a row of :data:`READ_DTYPE`), a *scan* (one
barcode), a *sighting* (deduplicated reads of one EPC on one reader antenna, a row of
:data:`SIGHTING_DTYPE`), a *location*, a *count session* and an *observation* (one
counted item of a session, a row of a session file: :data:`SESSION_FILE_COLUMNS`).

Reads travel in batches as numpy structured arrays of :data:`READ_DTYPE`, because the
read flood is the hot path: a handheld reports thousands of reads per second and the
dedup kernel works on whole columns, never on Python objects.
"""

from __future__ import annotations

import enum
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final, NewType

import numpy as np
import numpy.typing as npt

#: Longest EPC we carry, in hex digits (256 bits; GIAI-202 needs 51 digits).
EPC_HEX_MAX: Final = 64

#: One row per tag read. EPCs are upper-case hex ASCII (never NUL-padded in content,
#: so numpy's trailing-NUL stripping of ``S`` fields cannot change them). Times are UTC
#: microseconds since the Unix epoch, as LLRP reports them. Unknown optional values
#: (RSSI, phase, Doppler) are NaN.
READ_DTYPE: Final = np.dtype(
    [
        ("epc", f"S{EPC_HEX_MAX}"),
        ("reader", "u2"),  # reader index assigned by the daemon (see ReaderId)
        ("antenna", "u2"),  # 1-based LLRP AntennaID; 0 = unknown
        ("rssi", "f4"),  # peak RSSI in dBm
        ("first_seen_us", "i8"),
        ("last_seen_us", "i8"),
        ("seen_count", "u4"),  # reads the reader folded into this report (>= 1)
        ("phase", "f4"),  # radians, vendor extension (Impinj)
        ("doppler_hz", "f4"),  # vendor extension (Impinj)
    ]
)

ReadBatch = npt.NDArray[np.void]
"""A batch of reads: a 1-D structured array of :data:`READ_DTYPE`."""

ReaderId = NewType("ReaderId", int)
"""Small integer the daemon assigns to each configured reader or scanner."""


def empty_reads(n: int = 0) -> ReadBatch:
    """A batch of ``n`` reads with every optional value unknown (NaN)."""
    batch = np.zeros(n, dtype=READ_DTYPE)
    batch["rssi"] = np.nan
    batch["phase"] = np.nan
    batch["doppler_hz"] = np.nan
    batch["seen_count"] = 1
    return batch


def normalize_epc(epc: str | bytes) -> str:
    """Upper-case hex without separators; raises ValueError for anything else."""
    text = epc.decode("ascii") if isinstance(epc, bytes) else epc
    text = text.strip().replace(" ", "").replace(":", "").replace("-", "").upper()
    if text.startswith("0X"):
        text = text[2:]
    if not text or len(text) > EPC_HEX_MAX or len(text) % 2:
        raise ValueError(f"EPC must be 1..{EPC_HEX_MAX // 2} bytes of hex, got {epc!r}")
    int(text, 16)  # raises ValueError on non-hex digits
    return text


def now_us() -> int:
    """Current UTC time in microseconds since the epoch (the unit of every timestamp)."""
    return time.time_ns() // 1000


def us_to_datetime(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, tz=UTC)


#: One row per sighting, the dedup kernel's output.
SIGHTING_DTYPE: Final = np.dtype(
    [
        ("epc", f"S{EPC_HEX_MAX}"),
        ("reader", "u2"),
        ("antenna", "u2"),
        ("first_seen_us", "i8"),
        ("last_seen_us", "i8"),
        ("read_count", "u8"),  # sum of seen_count of the reads folded in
        ("peak_rssi", "f4"),
        ("mean_rssi", "f4"),  # mean over reports weighted by seen_count
    ]
)

SightingBatch = npt.NDArray[np.void]


class Method(enum.StrEnum):
    """How an observation was made."""

    RFID = "rfid"
    BARCODE = "barcode"
    MANUAL = "manual"


class Symbology(enum.StrEnum):
    """Barcode symbology, from the AIM symbology identifier when the scanner sends one."""

    GS1_128 = "gs1-128"
    CODE_128 = "code-128"
    CODE_39 = "code-39"
    QR = "qr"
    GS1_QR = "gs1-qr"
    DATAMATRIX = "datamatrix"
    GS1_DATAMATRIX = "gs1-datamatrix"
    EAN = "ean"
    UPC = "upc"
    UNKNOWN = "unknown"


class ScanKind(enum.StrEnum):
    """What a decoded barcode means to a count."""

    ASSET_TAG = "asset_tag"
    SERIAL = "serial"
    GIAI = "giai"
    GTIN = "gtin"
    LOCATION = "location"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Location:
    """A node of the site → room → row → rack → slot hierarchy, written ``DC1/Room 302``."""

    path: str

    def __post_init__(self) -> None:
        parts = [p.strip() for p in self.path.split("/")]
        if not self.path or any(not p for p in parts):
            raise ValueError(f"location must be non-empty parts joined by '/', got {self.path!r}")
        object.__setattr__(self, "path", "/".join(parts))

    @property
    def parts(self) -> tuple[str, ...]:
        return tuple(self.path.split("/"))

    @property
    def site(self) -> str:
        return self.parts[0]

    @property
    def parent(self) -> Location | None:
        return Location("/".join(self.parts[:-1])) if len(self.parts) > 1 else None

    def contains(self, other: Location) -> bool:
        """True when ``other`` is this location or lies below it."""
        return other.parts[: len(self.parts)] == self.parts

    def __str__(self) -> str:
        return self.path


@dataclass(frozen=True, slots=True)
class BarcodeScan:
    """One barcode decoded by a scanner, with what it was recognised as."""

    data: str  # decoded text, AIM prefix removed, GS separators kept as \x1d
    symbology: Symbology
    reader: str  # scanner name from the configuration
    timestamp_us: int
    kind: ScanKind = ScanKind.UNKNOWN
    value: str = ""  # the asset tag, serial, GIAI or location path it carries
    fields: dict[str, str] = field(default_factory=dict)  # parsed GS1 AIs, e.g. {"21": ...}


class SessionState(enum.StrEnum):
    OPEN = "open"
    CLOSED = "closed"


def new_session_id() -> str:
    """Time-ordered, collision-free id for a count session."""
    return f"cs-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


@dataclass(slots=True)
class CountSession:
    """One bounded physical count by one operator over a scope of locations."""

    session_id: str
    site: str
    operator: str
    scope: tuple[Location, ...]
    started_us: int
    ended_us: int | None = None
    state: SessionState = SessionState.OPEN
    location_context: Location | None = None


# -- hand-over formats ------------------------------------------------------------------
# The daemon and the engine never import each other: they agree on these file formats.

#: Columns of a session file (``<session_id>.parquet``), one row per observation. Written
#: by the daemon when a count session closes, read by ``tagsweep reconcile run``. A manual
#: count sheet (CSV) carries the same columns; only ``location`` and one of ``epc``,
#: ``asset_tag`` or ``serial`` are required there.
SESSION_FILE_COLUMNS: Final[dict[str, str]] = {
    "session_id": "string",
    "site": "string",
    "method": "string",  # Method: rfid | barcode | manual
    "location": "string",  # location path the observation is attributed to
    "epc": "string",  # hex, null for barcode/manual observations
    "asset_tag": "string",  # from a barcode scan or a GIAI, null if unknown
    "serial": "string",  # from a barcode scan, null if unknown
    "first_seen": "timestamp[us, UTC]",
    "last_seen": "timestamp[us, UTC]",
    "read_count": "int64",
    "peak_rssi": "float32",  # dBm, null for barcode/manual
    "reader": "string",  # reader or scanner name
    "operator": "string",
}

#: Keys of the JSON manifest written beside each session file (``<session_id>.json``).
SESSION_MANIFEST_KEYS: Final = (
    "session_id",
    "site",
    "operator",
    "scope",  # list of location paths
    "started",  # ISO 8601 UTC
    "ended",
    "row_count",
    "sha256",  # of the Parquet file
    "gateway",
    "tagsweep_version",
)


class VarianceType(enum.StrEnum):
    """Variance types of the reconciliation method (seed 000), in priority order."""

    RETIRED_BUT_ACTIVE = "retired_but_active"
    DUPLICATE_RECORD = "duplicate_record"
    MISSING = "missing"
    UNRECORDED = "unrecorded"
    IDENTITY_CONFLICT = "identity_conflict"
    PROBABLE_MATCH = "probable_match"
    CUSTODIAN_MISMATCH = "custodian_mismatch"
    LOCATION_MISMATCH = "location_mismatch"
    STATUS_CONDITION_MISMATCH = "status_condition_mismatch"
    SOURCE_CONFLICT = "source_conflict"
    STALE_RECORD = "stale_record"


#: Columns of the variance log (``variances.parquet`` / ``.csv`` / ``.jsonl`` of a run),
#: the input of the case workflow.
VARIANCE_LOG_COLUMNS: Final[dict[str, str]] = {
    "variance_id": "string",  # stable across runs: hash of type + asset key (+ detail key)
    "run_id": "string",
    "variance_type": "string",  # VarianceType
    "priority": "string",  # P1 (highest) .. P4
    "sla_due": "date32",  # business-day deadline from the run date
    "asset_key": "string",  # the register identity (asset tag, else make+serial, else EPC)
    "asset_tag": "string",
    "serial": "string",
    "epc": "string",
    "manufacturer": "string",
    "model": "string",
    "expected": "string",  # what the register says (location, status, custodian, ...)
    "found": "string",  # what the count or the other source says
    "expected_location": "string",
    "found_location": "string",
    "source": "string",  # source(s) whose record is involved
    "session_id": "string",  # count session(s) giving the evidence
    "value": "float64",  # book value / purchase cost, null if unknown
    "high_value": "bool",
    "high_risk": "bool",
    "detail": "string",  # one human sentence: what differs and what to check
    "evidence": "string",  # JSON object with the supporting fields
}
