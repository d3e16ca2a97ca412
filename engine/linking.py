"""Normalize's second half: every source's records tied to the register's assets, and
the register itself, one row per asset with each field from its source of truth.

A record of another source (MDM, ERP, DCIM) links to a register asset by asset tag,
then serial, hardware UUID, MAC; one no identifier links is pointed at a look-alike or
shortened identifier for review, never merged; an MDM's stale enrolment is set aside.
Each register field is then taken from the first source in ``field_precedence`` that
has a value, and the source it came from is kept beside it (provenance).
"""

from __future__ import annotations

from tagsweep.config.engine import REGISTER_FIELDS, EngineSection
from tagsweep.engine.stages import RunContext, lit


def precedence(settings: EngineSection, field: str, sources: list[tuple[str, str]]) -> list[str]:
    """Asset sources in the order they win ``field``: the configured list of source
    names and roles first (a role stands for its sources in input order), then the
    remaining sources in input order, so there is always one answer."""
    order: list[str] = []
    for entry in settings.field_precedence.get(field, []):
        for name, role in sources:
            if entry in {name, role} and name not in order:
                order.append(name)
    order += [name for name, _ in sources if name not in order]
    return order


REGISTER_PICKED = tuple(f for f in REGISTER_FIELDS if f not in {"last_seen", "updated_at"})
#: Columns that travel with a picked field (same source, same record).
COMPANIONS = {
    "status": ("status_label",),
    "manufacturer": ("manufacturer_key",),
    "model": ("model_key",),
    "condition": ("condition_key",),
    "custodian": ("custodian_key", "custodian_alt", "custodian_leaver"),
    "value": ("value_is_cost",),
}


#: Columns of source_records that only say why a value or record was set aside.
BAD_COLUMNS = "value_bad, last_seen_bad, retired_on_bad, excluded"

OTHER_LINKS = f"""
WITH reg AS (
    SELECT * FROM source_records
    WHERE bad_reason IS NULL AND excluded IS NULL AND source = PRIMARY_SOURCE
), tags AS (SELECT DISTINCT asset_tag, asset_key FROM reg WHERE asset_tag IS NOT NULL),
serials AS (SELECT serial, min(asset_key) AS asset_key FROM reg
            WHERE serial IS NOT NULL GROUP BY serial),
uuids AS (SELECT hardware_uuid, min(asset_key) AS asset_key FROM reg
          WHERE hardware_uuid IS NOT NULL GROUP BY hardware_uuid),
macs AS (SELECT mac, min(asset_key) AS asset_key FROM reg
         WHERE mac IS NOT NULL GROUP BY mac),
others AS (
    SELECT * EXCLUDE (bad_reason, asset_key, {BAD_COLUMNS}), asset_key AS own_key
    FROM source_records
    WHERE bad_reason IS NULL AND excluded IS NULL AND source <> PRIMARY_SOURCE
), linked AS (
    SELECT o.*,
        coalesce(t.asset_key, s.asset_key, u.asset_key, m.asset_key) AS link_key,
        CASE WHEN t.asset_key IS NOT NULL THEN 'asset_tag'
             WHEN s.asset_key IS NOT NULL THEN 'serial'
             WHEN u.asset_key IS NOT NULL THEN 'hardware_uuid'
             WHEN m.asset_key IS NOT NULL THEN 'mac' END AS tier
    FROM others o
    LEFT JOIN tags t ON t.asset_tag = o.asset_tag
    LEFT JOIN serials s ON t.asset_key IS NULL AND s.serial = o.serial
    LEFT JOIN uuids u ON t.asset_key IS NULL AND s.asset_key IS NULL
                         AND u.hardware_uuid = o.hardware_uuid
    LEFT JOIN macs m ON t.asset_key IS NULL AND s.asset_key IS NULL AND u.asset_key IS NULL
                        AND m.mac = o.mac
), unlinked AS (
    -- records no identifier links: a look-alike serial (O/0, I/1, ...), a serial or an
    -- asset tag written shorter, points at the asset for review, never a merge
    SELECT source, line, asset_tag, serial FROM linked WHERE link_key IS NULL
), near AS (
    -- equi-joins only (the register side is large): look-alike serial, a serial that
    -- is the other's start or end (5 characters at least), a tag with the same
    -- numeric core that is the other's end
    SELECT u.source, u.line, r.asset_key, 'look-alike serial' AS why, r.serial AS reg_serial,
        r.asset_tag AS reg_tag
    FROM unlinked u JOIN reg r ON lookalike(r.serial) = lookalike(u.serial)
    UNION ALL
    SELECT u.source, u.line, r.asset_key, 'shortened serial', r.serial, r.asset_tag
    FROM unlinked u JOIN reg r ON right(r.serial, 5) = right(u.serial, 5)
    WHERE length(u.serial) >= 5 AND r.serial <> u.serial
      AND (ends_with(r.serial, u.serial) OR ends_with(u.serial, r.serial))
    UNION ALL
    SELECT u.source, u.line, r.asset_key, 'shortened serial', r.serial, r.asset_tag
    FROM unlinked u JOIN reg r ON left(r.serial, 5) = left(u.serial, 5)
    WHERE length(u.serial) >= 5 AND r.serial <> u.serial
      AND (starts_with(r.serial, u.serial) OR starts_with(u.serial, r.serial))
    UNION ALL
    SELECT u.source, u.line, r.asset_key, 'shortened asset tag', r.serial, r.asset_tag
    FROM unlinked u JOIN reg r ON tag_core(r.asset_tag) = tag_core(u.asset_tag)
    WHERE r.asset_tag <> u.asset_tag
      AND (ends_with(r.asset_tag, u.asset_tag) OR ends_with(u.asset_tag, r.asset_tag))
), probable AS (
    SELECT source, line, min(asset_key) AS probable_key, min(why) AS probable_reason,
        min(reg_serial) AS probable_serial, min(reg_tag) AS probable_tag
    FROM near GROUP BY source, line HAVING count(DISTINCT asset_key) = 1
), keyed AS (
    SELECT l.* EXCLUDE (link_key, tier, own_key),
        coalesce(l.link_key, l.own_key) AS asset_key,
        CASE WHEN l.link_key IS NULL AND l.own_key IS NOT NULL THEN 'register' ELSE l.tier END
            AS link_tier,
        p.probable_key, p.probable_reason, p.probable_serial, p.probable_tag
    FROM linked l LEFT JOIN probable p ON l.link_key IS NULL AND p.source = l.source
        AND p.line = l.line
), enrolments AS (
    -- an MDM holding one device twice (a stale enrolment next to the live one): the
    -- most recent check-in is the device, the others are reported and set aside
    SELECT source, coalesce(asset_key, 'SN:' || serial) AS k FROM keyed
    WHERE role = 'mdm' AND coalesce(asset_key, serial) IS NOT NULL
    GROUP BY ALL HAVING count(*) > 1
), ranked AS (
    SELECT k.source, k.line, first_value(k.line) OVER w AS kept_line,
        row_number() OVER w AS n
    FROM keyed k SEMI JOIN enrolments e ON e.source = k.source
        AND e.k = coalesce(k.asset_key, 'SN:' || k.serial)
    WINDOW w AS (PARTITION BY k.source, coalesce(k.asset_key, 'SN:' || k.serial)
                 ORDER BY k.last_seen DESC NULLS LAST, k.line)
)
SELECT k.*, CASE WHEN r.n > 1 THEN r.kept_line END AS superseded_by
FROM keyed k LEFT JOIN ranked r ON r.source = k.source AND r.line = k.line
"""


def primary_source(ctx: RunContext) -> str | None:
    """The register source the others link to: the first source in a register role
    (in the order of ``field_precedence.asset_tag``, then input order)."""
    settings = ctx.settings
    pairs = [(s.name, str(s.role)) for s in ctx.sources if s.role in settings.register_roles]
    order = precedence(settings, "asset_tag", pairs)
    return order[0] if order else None


def register_sql(settings: EngineSection, sources: list[tuple[str, str]]) -> str:
    """One column-wise coalesce per field over per-source rows, in precedence order.

    Each source contributes at most one record per asset (its first by line; later
    duplicates are anti-joined away), so the register is a chain of joins on the asset
    key instead of a million-group aggregate.
    """
    if not sources:
        return "SELECT CAST(NULL AS VARCHAR) AS asset_key WHERE false"
    alias = {name: f"p{i}" for i, (name, _) in enumerate(sources)}
    per_source = ",\n".join(
        f"{alias[name]} AS (SELECT l.* FROM record_links l ANTI JOIN register_duplicates x "
        f"ON x.source = l.source AND x.asset_key = l.asset_key AND x.line = l.line "
        f"WHERE l.source = {lit(name)} AND l.asset_key IS NOT NULL)"
        for name, _ in sources
    )
    picks: list[str] = []
    for f in REGISTER_PICKED:
        order = precedence(settings, f, sources)
        picks.append("coalesce(" + ", ".join(f"{alias[n]}.{f}" for n in order) + f") AS {f}")
        winner = " ".join(f"WHEN {alias[n]}.{f} IS NOT NULL THEN {lit(n)}" for n in order)
        picks.append(f"CASE {winner} END AS {f}_source")
        for extra in COMPANIONS.get(f, ()):
            chosen = " ".join(
                f"WHEN {alias[n]}.{f} IS NOT NULL THEN {alias[n]}.{extra}" for n in order
            )
            picks.append(f"CASE {chosen} END AS {extra}")
    names = sorted(alias)
    last_seen = "greatest(" + ", ".join(f"{alias[n]}.last_seen" for n in names) + ")"
    last_seen_source = " ".join(
        f"WHEN {alias[n]}.last_seen = {last_seen} THEN {lit(n)}" for n in names
    )
    sources_list = ", ".join(
        f"CASE WHEN {alias[n]}.asset_key IS NOT NULL THEN {lit(n)} END" for n in names
    )
    register_aliases = [alias[n] for n, role in sources if role in settings.register_roles]
    if len(register_aliases) == 1:
        # one register source: its (deduplicated) records, one per asset, are the
        # assets; the other sources join to them (no self-join of the largest table)
        key = f"{register_aliases[0]}.asset_key"
        base = register_aliases[0]
        joined = [a for a in alias.values() if a != base]
        head = f"WITH {per_source}"
    else:
        key = "b.asset_key"
        base = "b"
        joined = list(alias.values())
        head = (
            f"WITH {per_source},\n"
            "b AS (SELECT DISTINCT asset_key FROM record_links WHERE link_tier = 'register')"
        )
    joins = " ".join(f"LEFT JOIN {a} ON {a}.asset_key = {key}" for a in joined)
    return f"""
{head}
SELECT {key} AS asset_key, {", ".join(picks)},
    {last_seen} AS last_seen,
    CASE {last_seen_source} END AS last_seen_source,
    concat_ws(',', {sources_list}) AS sources
FROM {base} {joins}
"""
