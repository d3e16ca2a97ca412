"""Configuration of the reconciliation engine (the ``[engine]`` table).

Kept in its own module because the engine grows its own settings (field mappings,
source precedence, thresholds) independently of the gateway's.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from tagsweep.config.cases import CasesSection


class EngineSection(BaseModel):
    """Settings of ``tagsweep reconcile``; see ``config/examples/engine.toml``."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    epc_scheme: str = Field(default="giai96", pattern=r"^(giai96|ascii|mapping)$")
    max_export_spread_hours: float = Field(default=24.0, gt=0)

    # -- cases, audit log and write-off approvals (config/cases.py) --------------
    cases: CasesSection = CasesSection()
