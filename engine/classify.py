"""Stage 4, classify: every difference becomes one variance of one fixed type.

"Use fixed variance categories instead of free-text notes" (seed 000). Each type is one
SELECT with its own rule, and every row carries the evidence a reviewer needs: what the
register expected and from which source, what the count found and in which session.
Priorities follow the seed (retired-but-active and duplicates first); high-value and
high-risk items are escalated and get the short SLA.

Rules, in the words of the method:

* ``retired_but_active``: a source says retired/disposed, but the count found it or
  discovery (MDM) saw it within ``active_within_days``.
* ``duplicate_record``: one source holds several active records of one device (same
  manufacturer and serial under different asset keys, or one tag twice).
* ``missing``: expected on site (``expected_present_statuses``), in scope, not counted.
* ``unrecorded``: counted, but no register record matches.
* ``identity_conflict``: the tag matches but the serial does not (or the reverse).
* ``probable_match``: only a look-alike serial matches: review, never merged.
* ``custodian_mismatch``: the count or discovery names another user than the register,
  or the assigned user has left (HR).
* ``location_mismatch``: found outside the recorded location (a deeper or coarser path
  of the same branch is not a mismatch).
* ``status_condition_mismatch``: found in another condition than recorded, or found
  although the register says planned / in transit / missing / stolen.
* ``source_conflict``: sources disagree on serial, manufacturer, model, location or
  status, or a non-register source holds a device the register lacks.
* ``stale_record``: not counted, not expected in this count, and no source has seen it
  within ``stale_after_days`` (or ever).
"""

from __future__ import annotations

import re

from tagsweep.domain import VarianceType
from tagsweep.engine.asset_checks import asset_checks_sql, expected_here_sql
from tagsweep.engine.stages import RunContext, Stage, lit
from tagsweep.engine.variance_rules import candidates_sql

#: The columns of every variance branch, in order (``detail_key`` tells apart variances
#: of one type on one asset; ids, priority and SLA are added by ``variances``).
CANDIDATE_COLUMNS: tuple[str, ...] = (
    "variance_type",
    "asset_key",
    "detail_key",
    "asset_tag",
    "serial",
    "epc",
    "manufacturer",
    "model",
    "expected",
    "found",
    "expected_location",
    "found_location",
    "source",
    "session_id",
    "value",
    "category",
    "detail",
    "evidence",
)

#: Register assets the count confirmed, with what it found (an asset counted several
#: times: its latest sighting's values).
FOUND_ASSETS = """
WITH c AS NOT MATERIALIZED (
    SELECT * FROM matches WHERE match_status = 'confirmed'
), k AS (
    SELECT asset_key, count(*) AS n FROM c GROUP BY asset_key
), repeated AS (
    -- the few assets counted more than once: joins against this set are cheap
    SELECT asset_key FROM k WHERE n > 1
), multi AS (
    SELECT *, (coalesce(last_seen, TIMESTAMPTZ '1970-01-01 00:00:00+00'), obs_key) AS ord
    FROM c SEMI JOIN repeated s ON s.asset_key = c.asset_key
)
SELECT asset_key, found_location, found_custodian, found_custodian_key, found_condition,
    found_condition_key, observed_serial, epc, session_id, methods, last_seen
FROM c ANTI JOIN repeated s ON s.asset_key = c.asset_key
UNION ALL
SELECT asset_key,
    arg_max(found_location, ord) AS found_location,
    arg_max(found_custodian, ord) FILTER (WHERE found_custodian IS NOT NULL),
    arg_max(found_custodian_key, ord) FILTER (WHERE found_custodian_key IS NOT NULL),
    arg_max(found_condition, ord) FILTER (WHERE found_condition IS NOT NULL),
    arg_max(found_condition_key, ord) FILTER (WHERE found_condition_key IS NOT NULL),
    arg_max(observed_serial, ord) FILTER (WHERE observed_serial IS NOT NULL),
    min(epc),
    string_agg(DISTINCT session_id, ',' ORDER BY session_id),
    string_agg(DISTINCT methods, ',' ORDER BY methods),
    max(last_seen)
FROM multi GROUP BY asset_key
"""


def stages(ctx: RunContext) -> list[Stage]:
    """The classify stages, in order."""
    s = ctx.settings
    as_of = ctx.as_of.isoformat()
    type_order = " ".join(f"WHEN {lit(t.value)} THEN {i}" for i, t in enumerate(VarianceType))
    prio = " ".join(f"WHEN {lit(t)} THEN {lit(p)}" for t, p in s.priorities.items())
    risk_words = "|".join(re.escape(c.strip().lower()) for c in s.high_risk_categories if c.strip())
    pattern = lit(r"\b(" + risk_words + r")s?\b")
    risk = f"coalesce(regexp_matches(lower(category), {pattern}), false)" if risk_words else "false"
    return [
        Stage(
            "register_scoped",
            "classify",
            f"""
SELECT r.asset_key, {expected_here_sql(ctx)} AS expected_here FROM register r
""",
            "register assets with whether this count should have found them",
            False,  # the report counts it once; asset_checks computes the same inline
        ),
        Stage(
            "found_assets",
            "classify",
            FOUND_ASSETS,
            "register assets the count confirmed, with what it found",
            False,  # read once, by asset_checks
        ),
        Stage(
            "asset_checks",
            "classify",
            asset_checks_sql(ctx),
            "register assets with a variance of their own: one pass over the register "
            "with what the count and discovery found, and a flag per variance type",
        ),
        Stage(
            "variance_candidates",
            "classify",
            f"SELECT * FROM ({candidates_sql(ctx)}) AS v({', '.join(CANDIDATE_COLUMNS)})",
            "one row per variance, before ids, priority and SLA",
            False,  # read once, by variances: storing it first only copies every row
        ),
        Stage(
            "variances",
            "classify",
            f"""
WITH v AS (
    SELECT *, coalesce(value >= {float(s.high_value_threshold)}, false) AS high_value,
        {risk} AS high_risk
    FROM variance_candidates
)
SELECT
    'V-' || substr(sha256(variance_type || '|' || asset_key || '|' || detail_key), 1, 16)
        AS variance_id,
    {lit(ctx.run_id)} AS run_id,
    variance_type,
    CASE WHEN high_value OR high_risk THEN 'P1' ELSE CASE variance_type {prio} END END
        AS priority,
    CASE WHEN high_value OR high_risk THEN DATE '{ctx.sla_urgent.isoformat()}'
         ELSE DATE '{ctx.sla_routine.isoformat()}' END AS sla_due,
    asset_key, asset_tag, serial, epc, manufacturer, model, expected, found,
    expected_location, found_location, source, session_id, CAST(value AS DOUBLE) AS value,
    high_value, high_risk, detail, CAST(evidence AS VARCHAR) AS evidence,
    CASE variance_type {type_order} END AS type_order, category
FROM v
""",
            f"the variance log as of {as_of}: ids stable across runs, priority, SLA",
        ),
    ]
