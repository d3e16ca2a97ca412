"""Stage 2, normalize: one vocabulary for every source before anything is compared.

The seed method: "If you compare data before cleaning that up, you'll end up chasing
mismatches that aren't real." Serials and tags are trimmed and upper-cased, placeholder
serials that BIOS vendors ship are dropped (they would otherwise merge unrelated
machines), manufacturers/models/locations go through alias tables, statuses through a
translation table into one lifecycle, and custodians are resolved against HR so that
``jdoe@corp``, ``JDOE`` and ``Jane Doe`` are one person.

This module holds the stages in order and the first half of them: every export row
mapped to the fields (``source_rows``), cleaned (``source_records``) and the values that
did not parse (``bad_values``). The vocabulary they clean with is in ``cleaning``; the
second half, tying records to the register's assets and picking each register field
from its source of truth, is in ``linking``.
"""

from __future__ import annotations

import re

from tagsweep.config.engine import HR_FIELDS, RECORD_FIELDS, REGISTER_FIELDS, EngineSection
from tagsweep.engine.cleaning import LEAVER_STATUSES
from tagsweep.engine.linking import BAD_COLUMNS, OTHER_LINKS, primary_source, register_sql
from tagsweep.engine.presets import GENERIC, PRESETS, Preset, conventions
from tagsweep.engine.stages import RunContext, SourceInput, Stage, ident, lit

#: Every field a source row carries into the normalize stages.
EXPORT_FIELDS: tuple[str, ...] = REGISTER_FIELDS + RECORD_FIELDS


def _column_expr(mapping: dict[str, list[str] | str], name: str) -> str:
    spec = mapping.get(name)
    if spec is None:
        return "CAST(NULL AS VARCHAR)"
    if isinstance(spec, list):
        parts = ", ".join(f"blank({ident(c)})" for c in spec)
        return f"nullif(concat_ws('/', {parts}), '')"
    if spec.startswith("="):
        return lit(spec[1:])
    return f"blank({ident(spec)})"


def custodian_dictionary(column: str, relation: str) -> str:
    """``raw → v (display), k (person key), leaver, in_hr`` over the distinct custodians
    of ``relation``: a user is found in HR by the whole text, by the username of
    "First Last (username)", by the name before it, or by an e-mail's local part; a
    user HR does not know keeps the most specific of those as key, so that
    "Jane Doe (jdoe)" and "jdoe@corp.example" are one person without HR too."""
    return f"""(
    SELECT d.raw, regexp_replace(blank(d.raw), '\\s+', ' ', 'g') AS v,
        coalesce(p1.person_key, p2.person_key, p3.person_key, p4.person_key,
                 d.k_user, d.k_local, d.k_full) AS k,
        -- the name-like key besides: "Ben Owens (bowens)" is also "ben owens", as the
        -- UPN ben.owens@corp.example is
        coalesce(CASE WHEN d.k_user IS NOT NULL THEN d.k_name END, d.k_local, d.k_full) AS a,
        coalesce(p1.leaver, p2.leaver, p3.leaver, p4.leaver, false) AS leaver,
        coalesce(p1.person_key, p2.person_key, p3.person_key, p4.person_key) IS NOT NULL
            AS in_hr
    FROM (
        SELECT raw, nullif(text_key(raw), '') AS k_full, user_in_parens(raw) AS k_user,
            name_before_parens(raw) AS k_name, email_local(raw) AS k_local
        FROM (SELECT DISTINCT {column} AS raw FROM {relation})
    ) d
    LEFT JOIN person_keys p1 ON p1.key = d.k_full
    LEFT JOIN person_keys p2 ON p2.key = d.k_user
    LEFT JOIN person_keys p3 ON p3.key = d.k_name
    LEFT JOIN person_keys p4 ON p4.key = d.k_local
)"""


#: Low-cardinality columns are normalized once per distinct value, then joined back:
#: regular expressions over a million rows cost more than a join on a few hundred.
DICTIONARIES = f"""
mfr_d AS (
    SELECT raw, CASE WHEN pm.key IS NULL
                     THEN coalesce(ma.canonical, regexp_replace(blank(raw), '\\s+', ' ', 'g'))
                END AS v,
        CASE WHEN pm.key IS NULL THEN coalesce(lower(ma.canonical), nullif(mfr_key(raw), ''))
        END AS k
    FROM (SELECT DISTINCT manufacturer_raw AS raw FROM source_rows)
    LEFT JOIN mfr_alias ma ON ma.key = mfr_key(raw)
    LEFT JOIN placeholder_manufacturers pm ON pm.key = lower(trim(raw))
), model_d AS (
    -- ServiceNow's display value leads with the manufacturer: strip it
    -- (a BIOS placeholder is no model; the key leaves out parenthesized details, as in
    -- Jamf's "MacBook Pro (14-inch, 2021)")
    SELECT raw, CASE WHEN pm.key IS NULL THEN coalesce(mo.canonical, mt.canonical, m.stripped)
                END AS v,
        CASE WHEN pm.key IS NULL THEN coalesce(text_key(mo.canonical), text_key(mt.canonical),
            CASE WHEN NOT lenovo_mtm(m.stripped) THEN nullif(text_key(
                regexp_replace(m.stripped, '\\s*\\([^)]*\\)', '', 'g')), '') END) END AS k
    FROM (
        SELECT raw, regexp_replace(blank(coalesce(nullif(trim(strip_mfr(raw)), ''), raw)),
                                   '\\s+', ' ', 'g') AS stripped
        FROM (SELECT DISTINCT model_raw AS raw FROM source_rows)
    ) m
    LEFT JOIN model_alias mo ON mo.key = text_key(m.stripped)
    LEFT JOIN model_alias mt ON lenovo_mtm(m.stripped) AND mt.key = text_key(left(m.stripped, 4))
    LEFT JOIN placeholder_manufacturers pm ON pm.key = lower(trim(m.raw))
), loc_d AS (
    SELECT raw, coalesce(lm.canonical, loc_clean(raw)) AS v
    FROM (SELECT DISTINCT location_raw AS raw FROM source_rows)
    LEFT JOIN location_map lm ON lm.key = text_key(raw)
), cond_d AS (
    SELECT raw, blank(raw) AS v, condition_key(raw) AS k
    FROM (SELECT DISTINCT condition_raw AS raw FROM source_rows)
), cust_d AS {custodian_dictionary("custodian_raw", "source_rows")},
st_d AS (
    -- exact label; Snipe-IT's "… Deployed" (checked out: in use whatever the label);
    -- the label without its status meta; the meta; ServiceNow's state before '/'
    SELECT d.source, d.raw, coalesce(sm1.status,
        CASE WHEN d.meta = 'deployed' THEN sm3.status END,
        sm2.status, sm3.status, sm4.status) AS status
    FROM (
        SELECT source, raw, lower(trim(raw)) AS k, status_meta(raw) AS meta,
            status_label_part(raw) AS lbl, lower(trim(split_part(raw, '/', 1))) AS head
        FROM (SELECT DISTINCT source, status_raw AS raw FROM source_rows)
    ) d
    LEFT JOIN status_map sm1 ON sm1.source = d.source AND sm1.raw = d.k
    LEFT JOIN status_map sm2 ON sm2.source = d.source AND sm2.raw = d.lbl
    LEFT JOIN status_map sm3 ON sm3.source = d.source AND sm3.raw = d.meta
    LEFT JOIN status_map sm4 ON sm4.source = d.source AND sm4.raw = d.head
)"""

SOURCE_RECORDS = f"""
WITH {DICTIONARIES},
val_d AS (
    -- numbers and dates are parsed once per distinct text, not once per row: a plain
    -- cast, then what a cast cannot read ("$1,899.00", "2026-06-02 10:14 AM")
    SELECT raw, dc, num_parse_as(raw, dc) AS v FROM (
        SELECT DISTINCT value_raw AS raw, decimal_comma AS dc FROM source_rows
        WHERE value_raw IS NOT NULL)
), seen_d AS (
    SELECT raw, df, v,
        -- a "none" sentinel is no date and no error either
        v IS NULL AND blank(raw) IS NOT NULL AND NOT date_sentinel(raw) AS bad
    FROM (
        SELECT raw, df, ts_parse_as(raw, df) AS v FROM (
            SELECT DISTINCT last_seen_raw AS raw, day_first AS df FROM source_rows
            WHERE last_seen_raw IS NOT NULL))
), s AS (
    SELECT r.*,
        upper(replace(replace(trim(r.serial_raw), ' ', ''), chr(9), '')) AS serial0,
        nullif(upper(regexp_replace(r.mac_raw, '[^0-9A-Fa-f]', '', 'g')), '') AS mac0,
        vd.v AS value0, sd.v AS last_seen0, coalesce(sd.bad, false) AS last_seen_is_bad
    FROM source_rows r
    LEFT JOIN val_d vd ON vd.raw = r.value_raw AND vd.dc = r.decimal_comma
    LEFT JOIN seen_d sd ON sd.raw = r.last_seen_raw AND sd.df = r.day_first
), s2 AS (
    SELECT s.*, (ps.serial IS NOT NULL OR serial_unusable(s.serial0)) AS placeholder
    FROM s LEFT JOIN placeholder_serials ps ON ps.serial = s.serial0
)
SELECT s2.source, s2.role, s2.file, s2.line,
    upper(blank(s2.asset_tag_raw)) AS asset_tag,
    CASE WHEN s2.placeholder THEN NULL ELSE nullif(s2.serial0, '') END AS serial,
    CASE WHEN s2.placeholder THEN s2.serial_raw END AS placeholder_serial,
    m.v AS manufacturer, m.k AS manufacturer_key,
    mo.v AS model, mo.k AS model_key,
    blank(s2.category_raw) AS category,
    lo.v AS location,
    blank(s2.status_raw) AS status_label,
    st.status,
    co.v AS condition, co.k AS condition_key,
    cu.v AS custodian, cu.k AS custodian_key, cu.a AS custodian_alt,
    coalesce(cu.leaver, false) AS custodian_leaver,
    s2.value0 AS value, s2.value_is_cost,
    upper(blank(s2.hardware_uuid_raw)) AS hardware_uuid,
    s2.mac0 AS mac,
    blank(s2.hostname_raw) AS hostname,
    s2.last_seen0 AS last_seen,
    blank(s2.record_id_raw) AS record_id,
    s2.excluded,
    -- a value that does not parse empties its field; the record stays (bad_values)
    CASE WHEN blank(s2.value_raw) IS NOT NULL AND s2.value0 IS NULL
         THEN trim(s2.value_raw) END AS value_bad,
    -- (the parsed value is NULL for a "none" sentinel too: only the others are bad)
    CASE WHEN s2.last_seen_is_bad THEN trim(s2.last_seen_raw) END AS last_seen_bad,
    CASE WHEN ts_bad(s2.retired_on_raw, s2.day_first) THEN trim(s2.retired_on_raw) END
        AS retired_on_bad,
    -- only a record with no identifier at all is kept out
    CASE
        WHEN blank(s2.asset_tag_raw) IS NULL
             AND (s2.placeholder OR nullif(s2.serial0, '') IS NULL)
             AND blank(s2.hardware_uuid_raw) IS NULL AND s2.mac0 IS NULL
             AND blank(s2.record_id_raw) IS NULL
        THEN CASE WHEN serial_mangled(s2.serial0)
                  THEN 'no usable identifier: serial ''' || trim(s2.serial_raw)
                       || ''' lost its digits to a spreadsheet (scientific notation)'
                       || ' and no asset tag'
                  WHEN nullif(s2.serial0, '') IS NOT NULL
                  THEN 'no usable identifier: placeholder serial ''' || trim(s2.serial_raw)
                       || ''' and no asset tag'
                  ELSE 'no usable identifier: no asset tag, serial, UUID, MAC or record id'
             END
    END AS bad_reason,
    blank(s2.status_raw) IS NOT NULL AND st.status IS NULL AS status_unmapped,
    CASE WHEN s2.role IN (REGISTER_ROLES) THEN coalesce(
        asset_tag, 'SN:' || coalesce(manufacturer_key, '') || '|' || serial,
        'HW:' || coalesce(hardware_uuid, mac), 'ID:' || s2.source || '|' || record_id)
    END AS asset_key
FROM s2
LEFT JOIN mfr_d m ON m.raw = s2.manufacturer_raw
LEFT JOIN model_d mo ON mo.raw = s2.model_raw
LEFT JOIN loc_d lo ON lo.raw = s2.location_raw
LEFT JOIN cond_d co ON co.raw = s2.condition_raw
LEFT JOIN cust_d cu ON cu.raw = s2.custodian_raw
LEFT JOIN st_d st ON st.source = s2.source AND st.raw = s2.status_raw
"""


def _empty(columns: tuple[str, ...], head: str) -> str:
    nulls = ", ".join(f"CAST(NULL AS VARCHAR) AS {f}_raw" for f in columns)
    return f"SELECT {head}, {nulls} WHERE false"


#: The normalize stages the count side (match's observations) reads: the HR people,
#: to resolve custodians written on count sheets.
COUNT_SIDE_NEEDS = ("people", "person_keys")


def stages(ctx: RunContext) -> list[Stage]:
    """The normalize stages, in order."""
    settings = ctx.settings
    asset_sources = [s for s in ctx.sources if s.role != "hr"]
    hr_sources = [s for s in ctx.sources if s.role == "hr"]
    out: list[Stage] = []

    hr_sql = " UNION ALL ".join(
        f"SELECT {lit(src.name)} AS source, {lit(src.file)} AS file, _line AS line, "
        + ", ".join(f"{_column_expr(src.columns, f)} AS {f}_raw" for f in HR_FIELDS)
        + f" FROM {src.relation}"
        for src in hr_sources
    ) or _empty(
        HR_FIELDS,
        "CAST(NULL AS VARCHAR) AS source, CAST(NULL AS VARCHAR) AS file, "
        "CAST(NULL AS BIGINT) AS line",
    )
    leavers = ", ".join(lit(s) for s in LEAVER_STATUSES)
    out.append(
        Stage(
            "people",
            "normalize",
            f"""
SELECT source, file, line,
    lower(blank(person_id_raw)) AS person_id,
    lower(blank(email_raw)) AS email_key,
    nullif(text_key(name_raw), '') AS name_key,
    coalesce(blank(name_raw), blank(email_raw), blank(person_id_raw)) AS display_name,
    coalesce(lower(blank(email_raw)), lower(blank(person_id_raw)), text_key(name_raw))
        AS person_key,
    (lower(trim(employment_status_raw)) IN ({leavers})
        OR ts_parse(blank(end_date_raw)) <= TIMESTAMPTZ '{ctx.as_of.isoformat()} 23:59:59+00')
        AS leaver,
    CASE WHEN blank(person_id_raw) IS NULL AND blank(email_raw) IS NULL
              AND blank(name_raw) IS NULL THEN 'no person id, email or name' END AS bad_reason,
    CASE WHEN ts_bad(end_date_raw, false) THEN trim(end_date_raw) END AS end_date_bad
FROM ({hr_sql})
""",
            "HR people with a leaver flag",
        )
    )
    out.append(
        Stage(
            "person_keys",
            "normalize",
            """
SELECT key, arg_min(person_key, line) AS person_key, arg_min(leaver, line) AS leaver
FROM (
    SELECT email_key AS key, * FROM people WHERE bad_reason IS NULL AND email_key IS NOT NULL
    UNION ALL
    SELECT person_id AS key, * FROM people WHERE bad_reason IS NULL AND person_id IS NOT NULL
    UNION ALL
    SELECT name_key AS key, * FROM people WHERE bad_reason IS NULL AND name_key IS NOT NULL
    UNION ALL
    -- the username of an e-mail ("jdoe" of jdoe@corp.example), as "Jane Doe (jdoe)" has it
    SELECT email_local(email_key) AS key, * FROM people
    WHERE bad_reason IS NULL AND email_local(email_key) IS NOT NULL
) GROUP BY key
""",
            "every way a custodian can be written → the person",
        )
    )
    rows_sql = " UNION ALL ".join(_source_select(src, settings) for src in asset_sources) or (
        _empty(
            EXPORT_FIELDS,
            "CAST(NULL AS VARCHAR) AS source, CAST(NULL AS VARCHAR) AS role, "
            "CAST(NULL AS VARCHAR) AS file, CAST(NULL AS BIGINT) AS line, "
            "false AS decimal_comma, false AS day_first, false AS value_is_cost, "
            "CAST(NULL AS VARCHAR) AS excluded",
        )
    )
    out.append(Stage("source_rows", "normalize", rows_sql, "export rows mapped to fields", False))
    roles = ", ".join(lit(r) for r in settings.register_roles)
    out.append(
        Stage(
            "source_records",
            "normalize",
            SOURCE_RECORDS.replace("REGISTER_ROLES", roles),
            "normalized export rows: a value that does not parse is emptied (bad_values), "
            "a record without any identifier is kept out (bad_reason)",
        )
    )
    primary = primary_source(ctx)
    out.append(
        Stage(
            "bad_values",
            "normalize",
            _bad_values_sql(ctx),
            "every value that did not parse: its field is empty, its record kept",
        )
    )
    has_others = any(src.name != primary for src in asset_sources)
    out.append(
        Stage(
            "other_links",
            "normalize",
            OTHER_LINKS.replace("PRIMARY_SOURCE", lit(primary or ""))
            if has_others
            # nothing to link: skip building the tag/serial/UUID/MAC indexes
            else f"SELECT * EXCLUDE (bad_reason, {BAD_COLUMNS}), "
            "CAST(NULL AS VARCHAR) AS link_tier, CAST(NULL AS VARCHAR) AS probable_key, "
            "CAST(NULL AS VARCHAR) AS probable_reason, CAST(NULL AS VARCHAR) AS probable_serial, "
            "CAST(NULL AS VARCHAR) AS probable_tag, CAST(NULL AS BIGINT) AS superseded_by "
            "FROM source_records WHERE false",
            "records of the other sources linked to the register's assets: tag, then serial, "
            "UUID, MAC (asset_key NULL: the register lacks the device; probable_key: a "
            "look-alike or shortened identifier; superseded_by: a stale MDM enrolment)",
        )
    )
    out.append(
        Stage(
            "record_links",
            "normalize",
            f"""
SELECT * EXCLUDE (bad_reason, {BAD_COLUMNS}), 'register' AS link_tier FROM source_records
WHERE bad_reason IS NULL AND excluded IS NULL AND source = {lit(primary or "")}
UNION ALL BY NAME
SELECT * EXCLUDE (superseded_by) FROM other_links WHERE superseded_by IS NULL
""",
            "every usable record with the register asset it belongs to",
            False,  # a union of two tables: scanning it is as cheap as storing it
        )
    )
    out.append(
        Stage(
            "register_duplicates",
            "normalize",
            """
WITH repeated AS (
    SELECT source, asset_key, min(line) AS first_line FROM record_links
    WHERE asset_key IS NOT NULL GROUP BY source, asset_key HAVING count(*) > 1
)
SELECT l.source, l.asset_key, l.line FROM record_links l
JOIN repeated r ON r.source = l.source AND r.asset_key = l.asset_key
WHERE l.line > r.first_line
""",
            "later records of a source for an asset it already holds: never picked",
        )
    )
    out.append(
        Stage(
            "register",
            "normalize",
            register_sql(settings, [(s.name, s.role) for s in asset_sources]),
            "one row per asset, each field from its source of truth, with provenance",
            # one source: a projection of its records, cheaper to recompute than to copy
            len(asset_sources) > 1,
        )
    )
    return out


_COST_HEADER = re.compile(r"cost|acq|anschaff|ahk|price|purchase|apc|kosten|preis", re.I)


def read_rules(src: SourceInput, settings: EngineSection) -> tuple[Preset, bool, bool]:
    """A source's preset, and whether it writes a decimal comma and day-first dates."""
    preset: Preset = PRESETS.get(src.preset, GENERIC)
    configured = settings.sources.get(src.name)
    decimal_comma, day_first = conventions(
        preset,
        configured.decimal_comma if configured else None,
        configured.day_first if configured else None,
    )
    return preset, decimal_comma, day_first


def _source_select(src: SourceInput, settings: EngineSection) -> str:
    """One source's rows with every export field as text, plus how to read them: its
    decimal comma and day-first dates, whether its value is a cost (comparable across
    systems, unlike a book value), and why a record is not company hardware."""
    preset, decimal_comma, day_first = read_rules(src, settings)
    configured = settings.sources.get(src.name)
    excluded_categories = (
        [c.strip().lower() for c in configured.exclude_categories] if configured else []
    )
    cols = {f: _column_expr(src.columns, f) for f in EXPORT_FIELDS}
    if "retired_on" in src.columns:
        # a deactivation (retirement) date says retired, whatever the status column says
        cols["status"] = (
            f"CASE WHEN ts_parse_as({cols['retired_on']}, {str(day_first).lower()}) IS NOT NULL "
            f"THEN 'Deactivated' ELSE {cols['status']} END"
        )
    value_column = src.columns.get("value")
    is_cost = isinstance(value_column, str) and bool(_COST_HEADER.search(value_column))
    rules = [
        f"WHEN regexp_full_match(lower(trim({cols[f]})), {lit(pattern)}) THEN {lit(reason)}"
        for f, pattern, reason in preset.exclude
        if f in src.columns
    ]
    if excluded_categories and "category" in src.columns:
        listed = ", ".join(lit(c) for c in excluded_categories)
        rules.append(
            f"WHEN lower(trim({cols['category']})) IN ({listed}) THEN 'category ' || "
            f"{cols['category']} || "
            + lit(f" is scoped out by [engine.sources.{src.name}] exclude_categories")
        )
    excluded = ("CASE " + " ".join(rules) + " END") if rules else "CAST(NULL AS VARCHAR)"
    return (
        f"SELECT {lit(src.name)} AS source, {lit(src.role)} AS role, {lit(src.file)} AS file, "
        "_line AS line, "
        + ", ".join(f"{cols[f]} AS {f}_raw" for f in EXPORT_FIELDS)
        + f", {str(decimal_comma).lower()} AS decimal_comma, {str(day_first).lower()} AS day_first"
        + f", {str(is_cost).lower()} AS value_is_cost, {excluded} AS excluded"
        + f" FROM {src.relation}"
    )


def _bad_values_sql(ctx: RunContext) -> str:
    """source, file, line, column (the export's header), value, reason of every value
    that did not parse; the column names come from each source's mapping."""

    def header(field: str) -> str:
        whens = []
        for src in ctx.sources:
            spec = src.columns.get(field)
            if spec is not None:
                name = "/".join(spec) if isinstance(spec, list) else spec
                whens.append(f"WHEN {lit(src.name)} THEN {lit(name)}")
        return f"CASE source {' '.join(whens)} END" if whens else lit(field)

    parts = [
        f"SELECT source, file, line, {header('value')} AS column, value_bad AS value, "
        "'not a number' AS reason FROM source_records WHERE value_bad IS NOT NULL",
        f"SELECT source, file, line, {header('last_seen')}, last_seen_bad, 'not a date' "
        "FROM source_records WHERE last_seen_bad IS NOT NULL",
        f"SELECT source, file, line, {header('retired_on')}, retired_on_bad, 'not a date' "
        "FROM source_records WHERE retired_on_bad IS NOT NULL",
        f"SELECT source, file, line, {header('serial')}, trim(placeholder_serial), "
        "CASE WHEN serial_mangled(upper(trim(placeholder_serial))) "
        "THEN 'serial lost its digits to a spreadsheet (scientific notation): not an "
        "identifier' ELSE 'placeholder serial: not an identifier' END "
        "FROM source_records WHERE placeholder_serial IS NOT NULL AND bad_reason IS NULL",
        f"SELECT source, file, line, {header('end_date')}, end_date_bad, 'not a date' "
        "FROM people WHERE end_date_bad IS NOT NULL",
    ]
    return " UNION ALL ".join(parts)
