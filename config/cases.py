"""Configuration of the case workflow (the ``[engine.cases]`` table).

Kept apart from the rest of the engine settings because it encodes an organisation's
control policy (who may approve a write-off, how long a missing asset is searched for)
rather than how data is matched; auditors review it on its own.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tagsweep.domain import VarianceType

#: Approver placeholder meaning "whoever owns the case at approval time".
CASE_OWNER = "@case_owner"

_VARIANCE_TYPES = frozenset(t.value for t in VarianceType)


def _check_types(values: list[str]) -> list[str]:
    unknown = sorted(set(values) - _VARIANCE_TYPES)
    if unknown:
        raise ValueError(
            f"unknown variance type(s) {unknown}; expected any of {sorted(_VARIANCE_TYPES)}"
        )
    return values


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class ApprovalStep(_Section):
    """One signature in the write-off approval chain.

    ``approvers`` lists the people allowed to sign this step; ``@case_owner`` means the
    owner of the case. The step only applies when the asset's value is at least
    ``min_value`` (unknown values always need it: an unpriced asset is not cheap).
    """

    name: str = Field(min_length=1, max_length=64)
    approvers: list[str] = Field(min_length=1)
    min_value: float = Field(default=0.0, ge=0)


def _default_chain() -> list[ApprovalStep]:
    return [
        ApprovalStep(name="owner", approvers=[CASE_OWNER]),
        ApprovalStep(name="finance", approvers=["finance"], min_value=1000.0),
    ]


class CasesSection(_Section):
    """Settings of ``tagsweep cases`` and ``tagsweep audit`` (``config/examples/engine.toml``)."""

    store: Path = Path("cases")
    #: Days a missing asset is searched for before a write-off may be requested (seed
    #: method, step 4: a 30- to 60-day investigation window).
    investigation_days: int = Field(default=45, ge=30, le=60)
    #: Variance types whose resolution needs evidence (an attached file or URL, or a
    #: later count in which the variance is gone).
    evidence_required: list[str] = Field(
        default_factory=lambda: [
            "retired_but_active",
            "duplicate_record",
            "missing",
            "unrecorded",
            "identity_conflict",
        ]
    )
    #: Variance types that may end in a write-off.
    write_off_types: list[str] = Field(default_factory=lambda: ["missing"])
    #: Lifecycle status the golden register gives a written-off asset.
    write_off_status: str = Field(default="retired", pattern=r"^(retired|stolen|missing)$")
    write_off_chain: list[ApprovalStep] = Field(default_factory=_default_chain)
    #: Owner of new cases by variance type; ``default_owner`` for the rest.
    owners: dict[str, str] = Field(default_factory=dict)
    default_owner: str | None = None
    #: OpenSSH allowed_signers file (relative to the config file): who may sign audit
    #: entries, by name. When set, every change is signed with the actor's SSH key and the
    #: actor is the key's owner, not a claimed name. Unset: entries are unsigned (legacy).
    allowed_signers: Path | None = None
    #: Who may request a write-off (names from allowed_signers); empty: any known signer.
    requesters: list[str] = Field(default_factory=list)
    #: Who may seal an unsigned log and publish anchors (names from allowed_signers).
    auditors: list[str] = Field(default_factory=list)

    _types = field_validator("evidence_required", "write_off_types")(_check_types)

    @field_validator("owners")
    @classmethod
    def _owner_types(cls, value: dict[str, str]) -> dict[str, str]:
        _check_types(list(value))
        return value

    @model_validator(mode="after")
    def _chain_names_unique(self) -> CasesSection:
        names = [step.name for step in self.write_off_chain]
        if len(set(names)) != len(names):
            raise ValueError(f"write_off_chain step names must be unique, got {names}")
        return self
