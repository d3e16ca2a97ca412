"""The expected register: a register file loaded as the assets a count should find.

The live view is loaded with the *expected* assets of a session's scope from a register
file the engine produced (the daemon never imports engine code; the file is the
contract): :func:`load_register` reads it (Parquet or CSV, or the first known register
file of a folder) into :class:`ExpectedAsset` rows, and :class:`RegisterIndex` finds the
row an observation — an EPC, a scanned asset tag or serial — is of.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from tagsweep.domain import Location, normalize_epc
from tagsweep.epc import EpcScheme, asset_tag_for_epc
from tagsweep.sql import ident

if TYPE_CHECKING:
    import duckdb

#: Register statuses whose assets are not expected to be on the floor. Seeing one of
#: them is worth flagging (it is a retired-but-active candidate), not ticking off.
NOT_ON_FLOOR_STATUSES: Final = frozenset({"retired", "stolen", "missing", "disposed", "planned"})

#: Files looked for, in order, when the expected register is given as a folder (a run
#: output folder, a golden register folder or a frozen snapshot).
REGISTER_FILE_NAMES: Final = (
    "golden.parquet",  # `tagsweep reconcile golden` output
    "register.parquet",  # `tagsweep reconcile run` output
    "golden.csv",
    "register.csv",
)

#: Column aliases accepted in a register file, first match wins.
COLUMN_ALIASES: Final[dict[str, tuple[str, ...]]] = {
    "asset_tag": ("asset_tag", "tag", "asset_tag_number"),
    "serial": ("serial", "serial_number"),
    "epc": ("epc",),
    "manufacturer": ("manufacturer", "make", "vendor"),
    "model": ("model",),
    "location": ("location", "location_path", "expected_location"),
    "status": ("status", "lifecycle_status", "lifecycle"),
    "position": ("slot", "position", "rack_position"),
}


class RegisterFileError(ValueError):
    """The expected register could not be loaded; the message says which file and why."""


@dataclass(frozen=True, slots=True)
class ExpectedAsset:
    """One asset the register says exists, where it says it is."""

    asset_tag: str | None
    serial: str | None
    epc: str | None
    manufacturer: str | None
    model: str | None
    location: str
    status: str | None = None
    position: str | None = None

    @property
    def key(self) -> str:
        """The register identity, as the engine forms it: tag, else make+serial, else EPC."""
        if self.asset_tag:
            return f"tag:{self.asset_tag}"
        if self.serial:
            return f"serial:{self.manufacturer or ''}|{self.serial}"
        return f"epc:{self.epc}"

    def to_json(self) -> dict[str, Any]:
        return {
            "asset_tag": self.asset_tag,
            "serial": self.serial,
            "epc": self.epc,
            "manufacturer": self.manufacturer,
            "model": self.model,
            "location": self.location,
            "position": self.position,
            "status": self.status,
        }


def text_or_none(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def upper_or_none(value: object) -> str | None:
    text = text_or_none(value)
    return text.upper() if text else None


def resolve_register_file(path: Path) -> Path:
    """The register file itself, or the first known register file inside a folder."""
    if path.is_dir():
        for name in REGISTER_FILE_NAMES:
            candidate = path / name
            if candidate.is_file():
                return candidate
        raise RegisterFileError(
            f"{path}: no register file in this folder; expected one of "
            f"{', '.join(REGISTER_FILE_NAMES)} (a run output or golden register folder)"
        )
    if not path.is_file():
        raise RegisterFileError(f"{path}: no such register file")
    return path


def open_register(
    con: duckdb.DuckDBPyConnection, path: Path
) -> tuple[Path, duckdb.DuckDBPyRelation]:
    """The register file of ``path`` (a file or a folder holding one) and a DuckDB relation
    over it (CSV read as text); RegisterFileError saying which file and why."""
    import duckdb

    file = resolve_register_file(path)
    suffix = file.suffix.lower()
    if suffix not in {".parquet", ".csv", ".tsv", ".txt"}:
        raise RegisterFileError(f"{file}: expected a .parquet or .csv register, got {suffix!r}")
    try:
        rel = (
            con.read_parquet(str(file))
            if suffix == ".parquet"
            else con.read_csv(str(file), all_varchar=True, header=True)
        )
    except duckdb.Error as exc:
        # DuckDB's message can quote the file's lines: say what kind of problem it is,
        # never what the file holds (the daemon may be pointed at a file it should not
        # show, through its control socket).
        kind = "Parquet" if suffix == ".parquet" else "CSV with a header row"
        raise RegisterFileError(
            f"{file}: cannot read register: not a readable {kind} file ({type(exc).__name__})"
        ) from None
    return file, rel


def load_register(path: Path) -> list[ExpectedAsset]:
    """Every asset of a register file (Parquet or CSV) or folder, normalized for matching.

    Read with DuckDB, column by column, so a register of a few hundred thousand rows
    loads in well under a second. Rows without a usable location are skipped: the live
    view cannot expect them anywhere.
    """
    import duckdb

    con = duckdb.connect(":memory:")
    try:
        file, rel = open_register(con, path)
        columns = {name.lower(): name for name in rel.columns}
        picked: dict[str, str] = {}
        for wanted, aliases in COLUMN_ALIASES.items():
            for alias in aliases:
                if alias in columns:
                    picked[wanted] = columns[alias]
                    break
        # Errors name the columns looked for, never the ones found: a header row is the
        # file's content (a secrets file's first line, say).
        if "location" not in picked:
            raise RegisterFileError(
                f"{file}: register has no location column (looked for "
                f"{', '.join(COLUMN_ALIASES['location'])} among its {len(columns)} columns)"
            )
        if not {"asset_tag", "serial", "epc"} & picked.keys():
            raise RegisterFileError(
                f"{file}: register needs an asset_tag, serial or epc column "
                f"(none among its {len(columns)} columns)"
            )
        projection = ", ".join(
            f"CAST({ident(picked[name])} AS VARCHAR) AS {ident(name)}"
            if name in picked
            else f"NULL AS {ident(name)}"
            for name in COLUMN_ALIASES
        )
        table = rel.project(projection).to_arrow_table()
    finally:
        con.close()
    cols = table.to_pydict()
    assets: list[ExpectedAsset] = []
    for i in range(table.num_rows):
        location = text_or_none(cols["location"][i])
        if location is None:
            continue
        try:
            location = Location(location).path
        except ValueError:
            continue
        epc_text = text_or_none(cols["epc"][i])
        try:
            epc = normalize_epc(epc_text) if epc_text else None
        except ValueError:
            epc = None
        tag = upper_or_none(cols["asset_tag"][i])
        serial = upper_or_none(cols["serial"][i])
        if not (tag or serial or epc):
            continue
        status = text_or_none(cols["status"][i])
        assets.append(
            ExpectedAsset(
                asset_tag=tag,
                serial=serial,
                epc=epc,
                manufacturer=text_or_none(cols["manufacturer"][i]),
                model=text_or_none(cols["model"][i]),
                location=location,
                status=status.lower() if status else None,
                position=text_or_none(cols["position"][i]),
            )
        )
    return assets


class RegisterIndex:
    """The register's rows by EPC, asset tag and serial (the first row of each wins)."""

    def __init__(self) -> None:
        self.by_epc: dict[str, ExpectedAsset] = {}
        self.by_tag: dict[str, ExpectedAsset] = {}
        self.by_serial: dict[str, ExpectedAsset] = {}

    def add(self, asset: ExpectedAsset) -> None:
        if asset.epc:
            self.by_epc.setdefault(asset.epc, asset)
        if asset.asset_tag:
            self.by_tag.setdefault(asset.asset_tag, asset)
        if asset.serial:
            self.by_serial.setdefault(asset.serial, asset)

    def lookup(
        self, *, asset_tag: str | None = None, serial: str | None = None
    ) -> ExpectedAsset | None:
        """The register row a scanned asset tag (else serial) names, if any."""
        tag, ser = upper_or_none(asset_tag), upper_or_none(serial)
        return (self.by_tag.get(tag) if tag else None) or (self.by_serial.get(ser) if ser else None)

    def identity_for_epc(
        self, epc: str, epc_scheme: EpcScheme
    ) -> tuple[str, ExpectedAsset | None, str | None]:
        """(identity, register row, asset tag the EPC encodes) for an EPC.

        The register's own epc column wins; otherwise the EPC is decoded under the
        configured scheme (GIAI-96 or ASCII) and looked up by asset tag. An EPC that
        decodes to a tag the register lacks is still known by that tag, so the page
        shows "AST-000113, not in register" rather than 24 hex digits, and a barcode
        scan of the same label counts as the same item.
        """
        asset = self.by_epc.get(epc)
        if asset is not None:
            return asset.key, asset, asset.asset_tag
        tag = asset_tag_for_epc(epc, epc_scheme) if epc_scheme != "mapping" else None
        tag = upper_or_none(tag)
        if tag:
            asset = self.by_tag.get(tag)
            return (asset.key if asset else f"tag:{tag}"), asset, tag
        return f"epc:{epc}", None, None
