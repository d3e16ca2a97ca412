"""Configuration of the reconciliation engine (the ``[engine]`` table).

Kept in its own module because the engine grows its own settings (field mappings,
source precedence, thresholds) independently of the gateway's. The seed method asks
that the source of truth of every field, the status translation table and the
escalation thresholds be decided *before* matching, so all of them live here and are
hashed into every run manifest.
"""

from __future__ import annotations

import string
from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tagsweep import signing
from tagsweep.config.cases import CasesSection
from tagsweep.config.nightly import NightlySection
from tagsweep.domain import VarianceType

#: The canonical lifecycle every source status is translated into (DESIGN.md).
LIFECYCLE: tuple[str, ...] = (
    "planned",
    "in_stock",
    "staged",
    "in_use",
    "in_repair",
    "defective",
    "in_transit",
    "pending_disposal",
    "retired",
    "missing",
    "stolen",
)

#: Roles a source can play; the role decides what its records mean to the register.
SOURCE_ROLES: tuple[str, ...] = ("itam", "mdm", "fixed_asset", "procurement", "hr")

#: Fields of a register record that exports map onto.
REGISTER_FIELDS: tuple[str, ...] = (
    "asset_tag",
    "serial",
    "manufacturer",
    "model",
    "category",
    "location",
    "status",
    "condition",
    "custodian",
    "value",
    "hardware_uuid",
    "mac",
    "hostname",
    "last_seen",
    "updated_at",
)
#: Fields an export may carry that only say how to read its records, never register
#: values: the source's own record id (an identifier of last resort: NetBox's ID, a
#: ServiceNow sys_id, an SAP asset number), the ownership an MDM records (Intune's
#: Corporate / Personal), and the date a fixed-asset system deactivated the asset.
RECORD_FIELDS: tuple[str, ...] = ("record_id", "ownership", "retired_on")
#: Fields of an HR export.
HR_FIELDS: tuple[str, ...] = ("person_id", "email", "name", "employment_status", "end_date")

VARIANCE_TYPES: tuple[str, ...] = tuple(t.value for t in VarianceType)

Priority = Literal["P1", "P2", "P3", "P4"]


def _default_priorities() -> dict[str, Priority]:
    # The seed: retired-but-active and duplicates first; identity questions next.
    return {
        "retired_but_active": "P1",
        "duplicate_record": "P1",
        "missing": "P2",
        "identity_conflict": "P2",
        "unrecorded": "P2",
        "probable_match": "P3",
        "custodian_mismatch": "P3",
        "location_mismatch": "P3",
        "status_condition_mismatch": "P3",
        "source_conflict": "P4",
        "stale_record": "P4",
    }


def _default_precedence() -> dict[str, list[str]]:
    # Names here are source names or roles; the first source with a value wins.
    return {
        "asset_tag": ["itam", "fixed_asset", "mdm", "procurement"],
        "serial": ["itam", "mdm", "fixed_asset", "procurement"],
        "manufacturer": ["itam", "mdm", "procurement", "fixed_asset"],
        "model": ["itam", "mdm", "procurement", "fixed_asset"],
        "category": ["itam", "fixed_asset", "mdm"],
        "location": ["itam", "fixed_asset", "mdm"],
        "status": ["itam", "fixed_asset", "mdm"],
        "condition": ["itam"],
        "custodian": ["itam", "mdm"],
        "value": ["fixed_asset", "procurement", "itam"],
        "hardware_uuid": ["mdm", "itam"],
        "mac": ["mdm", "itam"],
        "hostname": ["mdm", "itam"],
    }


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class SourceSettings(_Strict):
    """How one source's exports are read: its preset, its role, column overrides."""

    preset: str = "generic"
    role: Literal["itam", "mdm", "fixed_asset", "procurement", "hr"] | None = None
    #: canonical field → export column name (overrides the preset's guess)
    columns: dict[str, str] = {}
    #: raw status label (case-insensitive) → canonical lifecycle, for this source only
    status_map: dict[str, str] = {}
    #: how the export writes numbers and dates (default: the preset's choice): decimal
    #: comma ("1.899,00") and day-first dates ("03/04/2026" is 3 April)
    decimal_comma: bool | None = None
    day_first: bool | None = None
    #: text encoding of a CSV export (default: detected), e.g. "windows-1252"
    encoding: str | None = None
    #: categories (device roles, model categories) no count will tag, such as patch
    #: panels and cable managers: their records are left out of the reconciliation
    exclude_categories: list[str] = []

    @field_validator("columns")
    @classmethod
    def _known_fields(cls, value: dict[str, str]) -> dict[str, str]:
        known = REGISTER_FIELDS + RECORD_FIELDS + HR_FIELDS
        unknown = sorted(set(value) - set(known))
        if unknown:
            raise ValueError(f"unknown field(s) {unknown}; expected some of {list(known)}")
        return value

    @field_validator("encoding")
    @classmethod
    def _codec(cls, value: str | None) -> str | None:
        if value is not None:
            import codecs

            try:
                codecs.lookup(value)
            except LookupError:
                raise ValueError(f"unknown encoding {value!r}") from None
        return value

    @field_validator("status_map")
    @classmethod
    def _lifecycle(cls, value: dict[str, str]) -> dict[str, str]:
        return _check_lifecycle_map(value)


def _check_lifecycle_map(value: dict[str, str]) -> dict[str, str]:
    bad = sorted(v for v in value.values() if v not in LIFECYCLE)
    if bad:
        raise ValueError(f"status(es) {bad} are not in the lifecycle {list(LIFECYCLE)}")
    return {k.strip().lower(): v for k, v in value.items()}


def _check_statuses(value: list[str]) -> list[str]:
    bad = sorted(v for v in value if v not in LIFECYCLE)
    if bad:
        raise ValueError(f"status(es) {bad} are not in the lifecycle {list(LIFECYCLE)}")
    return value


def check_tag_format(value: str) -> str:
    """Accept only what the engine can also evaluate in SQL: literal text, ``{ref}``
    with an optional ``0Nd``/``d`` spec, and ``{company_prefix}``."""
    for _, name, spec, conv in string.Formatter().parse(value):
        if name is None:
            continue
        if conv or name not in {"ref", "company_prefix"}:
            raise ValueError("only the fields {ref} and {company_prefix} are allowed")
        if name == "company_prefix" and spec:
            raise ValueError("{company_prefix} takes no format spec")
        if (
            name == "ref"
            and spec
            and not (
                spec == "d"
                or (spec.startswith("0") and spec.endswith("d") and spec[1:-1].isdigit())
            )
        ):
            raise ValueError("{ref} takes no spec, 'd' or a zero-padded width like '06d'")
    if "{ref" not in value:
        raise ValueError("the format must contain {ref}")
    value.format(ref=1, company_prefix="0")
    return value


class ExportLimits(BaseModel):
    """What an untrusted export may cost before freeze refuses it (``[engine.limits]``).

    Exports come from other teams' systems; a small file must not be able to take the
    engine's memory or time (a zip bomb in an XLSX, millions of empty rows, JSON nested
    a hundred thousand deep). Each limit, when exceeded, stops the freeze with the file,
    the position and the setting to raise."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: size of the export file
    max_file_mb: float = Field(default=2048.0, gt=0)
    #: data rows of one export
    max_rows: int = Field(default=5_000_000, ge=1)
    #: columns of one export
    max_columns: int = Field(default=2_000, ge=1)
    #: rows x columns of one export
    max_cells: int = Field(default=200_000_000, ge=1)
    #: characters in one value
    max_cell_chars: int = Field(default=100_000, ge=1)
    #: nesting of a JSON export (objects and arrays)
    max_json_depth: int = Field(default=64, ge=1, le=500)
    #: an XLSX is a zip: total size of what it unpacks to
    max_unzipped_mb: float = Field(default=4096.0, gt=0)
    #: an XLSX member larger than 1 MB unpacked may not unpack to more than this many
    #: times its packed size (spreadsheets reach 10-50; zip bombs thousands)
    max_zip_ratio: float = Field(default=200.0, gt=1)


class EngineSection(BaseModel):
    """Settings of ``tagsweep reconcile``; see ``config/examples/engine.toml``."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    # -- EPC → asset tag -------------------------------------------------------------
    epc_scheme: str = Field(default="giai96", pattern=r"^(giai96|ascii|mapping)$")
    giai_company_prefix: str | None = Field(default="0614141", pattern=r"^\d{6,12}$")
    giai_asset_tag_format: str = "AST-{ref:06d}"
    epc_mapping_file: Path | None = None  # CSV with columns epc, asset_tag

    # -- freeze ----------------------------------------------------------------------
    max_export_spread_hours: float = Field(default=24.0, gt=0)
    sources: dict[str, SourceSettings] = {}

    # -- session files ---------------------------------------------------------------
    #: gateway id → the Ed25519 public key(s) its session manifests are signed with
    #: (``tagsweep session key`` on the gateway prints it); empty: hashes only
    trusted_gateways: dict[str, list[str]] = {}

    # -- untrusted files -------------------------------------------------------------
    limits: ExportLimits = ExportLimits()

    # -- normalize -------------------------------------------------------------------
    register_roles: list[Literal["itam", "mdm", "fixed_asset", "procurement"]] = ["itam"]
    field_precedence: dict[str, list[str]] = Field(default_factory=_default_precedence)
    status_map: dict[str, str] = {}
    manufacturer_aliases: dict[str, str] = {}
    model_aliases: dict[str, str] = {}
    location_map: dict[str, str] = {}
    placeholder_serials: list[str] = []

    # -- classify --------------------------------------------------------------------
    scope: list[str] = []  # location prefixes counted; empty = from the session manifests
    expected_present_statuses: list[str] = ["in_stock", "staged", "in_use", "defective"]
    found_status_mismatch: list[str] = ["planned", "in_transit", "missing", "stolen"]
    retired_statuses: list[str] = ["retired", "pending_disposal"]
    active_within_days: int = Field(default=30, ge=0)
    stale_after_days: int = Field(default=180, ge=1)
    high_value_threshold: float = Field(default=5000.0, ge=0)
    high_risk_categories: list[str] = ["server", "network", "storage", "security"]

    # -- priority and SLA ------------------------------------------------------------
    priorities: dict[str, Priority] = Field(default_factory=_default_priorities)
    sla_business_days: int = Field(default=5, ge=1)
    sla_business_days_urgent: int = Field(default=1, ge=1)
    holidays: list[date] = []

    # -- cases, audit log and write-off approvals (config/cases.py) --------------
    cases: CasesSection = CasesSection()

    # -- the scheduled run (config/nightly.py) ---------------------------------------
    nightly: NightlySection = NightlySection()

    _tag_format = field_validator("giai_asset_tag_format")(check_tag_format)
    _status_map = field_validator("status_map")(_check_lifecycle_map)
    _statuses = field_validator(
        "expected_present_statuses", "found_status_mismatch", "retired_statuses"
    )(_check_statuses)

    @field_validator("trusted_gateways", mode="before")
    @classmethod
    def _gateway_keys(cls, value: object) -> object:
        if not isinstance(value, dict):
            return value
        out: dict[str, list[str]] = {}
        for gateway, keys in value.items():
            listed = [keys] if isinstance(keys, str) else keys
            if not isinstance(listed, list) or not listed:
                raise ValueError(f"{gateway}: expected a public key or a list of them")
            for key in listed:
                try:
                    signing.parse_public_key(str(key))
                except signing.SigningError as exc:
                    raise ValueError(f"{gateway}: {exc}") from None
            out[str(gateway)] = [str(k).strip() for k in listed]
        return out

    @field_validator("field_precedence")
    @classmethod
    def _precedence(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        unknown = sorted(set(value) - set(REGISTER_FIELDS))
        if unknown:
            raise ValueError(f"unknown field(s) {unknown}; expected some of {REGISTER_FIELDS}")
        merged = _default_precedence()
        merged.update(value)
        return merged

    @field_validator("priorities")
    @classmethod
    def _priorities(cls, value: dict[str, Priority]) -> dict[str, Priority]:
        unknown = sorted(set(value) - set(VARIANCE_TYPES))
        if unknown:
            raise ValueError(f"unknown variance type(s) {unknown}; expected {VARIANCE_TYPES}")
        merged = _default_priorities()
        merged.update(value)
        return merged

    @model_validator(mode="after")
    def _mapping_needs_file(self) -> EngineSection:
        if self.epc_scheme == "mapping" and self.epc_mapping_file is None:
            raise ValueError("epc_scheme = 'mapping' needs epc_mapping_file")
        if self.sla_business_days_urgent > self.sla_business_days:
            raise ValueError("sla_business_days_urgent must not exceed sla_business_days")
        return self
