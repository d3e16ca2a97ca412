"""Stage 2, normalize: one vocabulary for every source before anything is compared.

The seed method: "If you compare data before cleaning that up, you'll end up chasing
mismatches that aren't real." Serials and tags are trimmed and upper-cased, placeholder
serials that BIOS vendors ship are dropped (they would otherwise merge unrelated
machines), manufacturers/models/locations go through alias tables, statuses through a
translation table into one lifecycle, and custodians are resolved against HR so that
``jdoe@corp``, ``JDOE`` and ``Jane Doe`` are one person. Then records of all sources are
linked to register assets, and each register field is taken from the source that the
configuration names as its source of truth.
"""

from __future__ import annotations

import duckdb

from tagsweep.config.engine import HR_FIELDS, REGISTER_FIELDS, EngineSection
from tagsweep.engine.presets import COMMON_STATUS_MAP, PRESETS
from tagsweep.engine.stages import RunContext, Stage, ident, lit

#: Serials that firmware and imaging tools write when the real one is unknown.
PLACEHOLDER_SERIALS: tuple[str, ...] = (
    "TO BE FILLED BY O.E.M.",
    "TOBEFILLEDBYO.E.M.",
    "SYSTEM SERIAL NUMBER",
    "SYSTEMSERIALNUMBER",
    "DEFAULT STRING",
    "DEFAULTSTRING",
    "CHASSIS SERIAL NUMBER",
    "CHASSISSERIALNUMBER",
    "NOT SPECIFIED",
    "NOTSPECIFIED",
    "NOT APPLICABLE",
    "NOTAPPLICABLE",
    "N/A",
    "NA",
    "NONE",
    "NULL",
    "UNKNOWN",
    "SERIAL",
    "INVALID",
    "0123456789",
    "123456789",
    "1234567890",
    "-",
)

#: Manufacturer alias keys (see the ``mfr_key`` macro) → canonical name.
MANUFACTURER_ALIASES: dict[str, str] = {
    "dell": "Dell",
    "dell technologies": "Dell",
    "hp": "HP",
    "hewlett packard": "HP",
    "hpe": "HPE",
    "hewlett packard enterprise": "HPE",
    "lenovo": "Lenovo",
    "apple": "Apple",
    "microsoft": "Microsoft",
    "cisco": "Cisco",
    "cisco systems": "Cisco",
    "supermicro": "Supermicro",
    "super micro computer": "Supermicro",
    "juniper": "Juniper",
    "juniper networks": "Juniper",
    "samsung": "Samsung",
    "samsung electronics": "Samsung",
    "vmware": "VMware",
    "zebra": "Zebra",
    "zebra technologies": "Zebra",
}

#: Employment statuses of people who left (case-insensitive); "false" is a directory's
#: accountEnabled, "deprovisioned" Okta's status for a removed user.
LEAVER_STATUSES = (
    "terminated", "inactive", "leaver", "left", "withdrawn", "former", "exited",
    "false", "disabled", "deprovisioned",
)  # fmt: skip

_TS_FORMATS = (
    "['%Y-%m-%d %H:%M:%S', '%Y-%m-%d %H:%M', '%Y-%m-%d', '%m/%d/%Y %H:%M:%S', "
    "'%m/%d/%Y %H:%M', '%m/%d/%Y %I:%M %p', '%m/%d/%Y', '%d.%m.%Y %H:%M', '%d.%m.%Y', "
    "'%Y/%m/%d %H:%M:%S', '%Y/%m/%d']"
)

MACROS = f"""
CREATE OR REPLACE MACRO ts_parse(x) AS coalesce(
    TRY_CAST(x AS TIMESTAMPTZ), CAST(try_strptime(x, {_TS_FORMATS}) AS TIMESTAMPTZ));
CREATE OR REPLACE MACRO money_text(x) AS regexp_replace(x, '[$€£\\s]|USD|EUR|GBP', '', 'g');
-- "1.299,00", "1299,50" (decimal comma, as many European exports write money) vs
-- "1,299.00", "1,299" (thousands commas: a comma before exactly three digits is one)
CREATE OR REPLACE MACRO num_parse(x) AS CASE
    WHEN regexp_full_match(money_text(x),
        '-?[0-9]{{1,3}}([.][0-9]{{3}})+,[0-9]+|-?[0-9]+,([0-9]{{1,2}}|[0-9]{{4,}})')
    THEN TRY_CAST(replace(replace(money_text(x), '.', ''), ',', '.') AS DOUBLE)
    ELSE TRY_CAST(replace(money_text(x), ',', '') AS DOUBLE) END;
CREATE OR REPLACE MACRO blank(x) AS nullif(trim(x), '');
CREATE OR REPLACE MACRO serial_clean(x) AS upper(regexp_replace(trim(x), '\\s+', '', 'g'));
CREATE OR REPLACE MACRO serial_repeated(s) AS
    length(s) > 0 AND length(replace(s, left(s, 1), '')) = 0;
-- a long numeric serial a spreadsheet turned into a number ("1.23457E+11"): its digits
-- are lost, so it identifies nothing (cheap test first: the regex runs on few rows)
CREATE OR REPLACE MACRO serial_mangled(s) AS
    contains(s, 'E+') AND regexp_full_match(s, '[0-9]+([.][0-9]+)?E[+][0-9]+');
CREATE OR REPLACE MACRO serial_unusable(s) AS serial_repeated(s) OR serial_mangled(s);
CREATE OR REPLACE MACRO lookalike(s) AS translate(s, 'OISBZ', '01582');
CREATE OR REPLACE MACRO mfr_key(m) AS trim(regexp_replace(regexp_replace(regexp_replace(
    lower(m), '[^a-z0-9]+', ' ', 'g'),
    '\\b(inc|incorporated|corporation|corp|co|ltd|llc|gmbh|company|limited)\\b', '', 'g'),
    '\\s+', ' ', 'g'));
CREATE OR REPLACE MACRO text_key(x) AS lower(regexp_replace(trim(x), '\\s+', ' ', 'g'));
CREATE OR REPLACE MACRO loc_clean(x) AS nullif(regexp_replace(regexp_replace(
    trim(x), '\\s*/\\s*', '/', 'g'), '\\s+', ' ', 'g'), '');
CREATE OR REPLACE MACRO loc_within(a, b) AS
    a = b OR lower(a) = lower(b) OR starts_with(lower(a), lower(b) || '/')
    OR starts_with(lower(b), lower(a) || '/');
CREATE OR REPLACE MACRO condition_key(x) AS nullif(lower(trim(regexp_extract(x, '^[^(]*'))), '');
"""


def create_lookup_tables(con: duckdb.DuckDBPyConnection, ctx: RunContext) -> None:
    """Tables the stages join against: status translation, aliases, placeholders."""
    settings = ctx.settings
    con.execute(MACROS)
    status_rows: list[tuple[str, str, str]] = []
    for src in ctx.sources:
        configured = settings.sources.get(src.name)
        merged: dict[str, str] = dict(COMMON_STATUS_MAP)
        if src.preset in PRESETS:
            merged.update(PRESETS[src.preset].status_map)
        merged.update(settings.status_map)
        if configured is not None:
            merged.update(configured.status_map)
        status_rows.extend((src.name, raw.lower(), status) for raw, status in merged.items())
    con.execute("CREATE OR REPLACE TABLE status_map (source VARCHAR, raw VARCHAR, status VARCHAR)")
    if status_rows:
        con.executemany("INSERT INTO status_map VALUES (?, ?, ?)", status_rows)
    con.execute("CREATE OR REPLACE TABLE mfr_alias_raw (alias VARCHAR, canonical VARCHAR)")
    aliases = list(MANUFACTURER_ALIASES.items()) + list(settings.manufacturer_aliases.items())
    con.executemany("INSERT INTO mfr_alias_raw VALUES (?, ?)", aliases)
    con.execute(
        "CREATE OR REPLACE TABLE mfr_alias AS SELECT mfr_key(alias) AS key, "
        "last(canonical ORDER BY rowid) AS canonical FROM mfr_alias_raw GROUP BY 1"
    )
    con.execute("CREATE OR REPLACE TABLE model_alias (key VARCHAR, canonical VARCHAR)")
    if settings.model_aliases:
        con.executemany(
            "INSERT INTO model_alias SELECT text_key(?), ?",
            list(settings.model_aliases.items()),
        )
    con.execute("CREATE OR REPLACE TABLE location_map (key VARCHAR, canonical VARCHAR)")
    if settings.location_map:
        con.executemany(
            "INSERT INTO location_map SELECT text_key(?), loc_clean(?)",
            list(settings.location_map.items()),
        )
    con.execute("CREATE OR REPLACE TABLE placeholder_serials (serial VARCHAR PRIMARY KEY)")
    placeholders = {p.upper() for p in PLACEHOLDER_SERIALS} | {
        p.strip().upper() for p in settings.placeholder_serials
    }
    placeholders |= {p.replace(" ", "") for p in placeholders}
    con.executemany(
        "INSERT INTO placeholder_serials VALUES (?)", [(p,) for p in sorted(placeholders)]
    )


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


def _precedence(settings: EngineSection, field: str, sources: list[tuple[str, str]]) -> list[str]:
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
    "custodian": ("custodian_key", "custodian_leaver"),
}

#: Low-cardinality columns are normalized once per distinct value, then joined back:
#: regular expressions over a million rows cost more than a join on a few hundred.
DICTIONARIES = """
mfr_d AS (
    SELECT raw, coalesce(ma.canonical, regexp_replace(blank(raw), '\\s+', ' ', 'g')) AS v,
        coalesce(lower(ma.canonical), nullif(mfr_key(raw), '')) AS k
    FROM (SELECT DISTINCT manufacturer_raw AS raw FROM source_rows)
    LEFT JOIN mfr_alias ma ON ma.key = mfr_key(raw)
), model_d AS (
    SELECT raw, coalesce(mo.canonical, regexp_replace(blank(raw), '\\s+', ' ', 'g')) AS v,
        coalesce(text_key(mo.canonical), nullif(text_key(raw), '')) AS k
    FROM (SELECT DISTINCT model_raw AS raw FROM source_rows)
    LEFT JOIN model_alias mo ON mo.key = text_key(raw)
), loc_d AS (
    SELECT raw, coalesce(lm.canonical, loc_clean(raw)) AS v
    FROM (SELECT DISTINCT location_raw AS raw FROM source_rows)
    LEFT JOIN location_map lm ON lm.key = text_key(raw)
), cond_d AS (
    SELECT raw, blank(raw) AS v, condition_key(raw) AS k
    FROM (SELECT DISTINCT condition_raw AS raw FROM source_rows)
), cust_d AS (
    SELECT raw, regexp_replace(blank(raw), '\\s+', ' ', 'g') AS v,
        coalesce(pk.person_key, nullif(text_key(raw), '')) AS k,
        coalesce(pk.leaver, false) AS leaver, pk.person_key IS NOT NULL AS in_hr
    FROM (SELECT DISTINCT custodian_raw AS raw FROM source_rows)
    LEFT JOIN person_keys pk ON pk.key = nullif(text_key(raw), '')
), st_d AS (
    SELECT d.source, d.raw, coalesce(sm1.status, sm2.status) AS status
    FROM (SELECT DISTINCT source, status_raw AS raw FROM source_rows) d
    LEFT JOIN status_map sm1 ON sm1.source = d.source AND sm1.raw = lower(trim(d.raw))
    LEFT JOIN status_map sm2 ON sm2.source = d.source
                            AND sm2.raw = lower(trim(split_part(d.raw, '/', 1)))
)"""

SOURCE_RECORDS = f"""
WITH {DICTIONARIES},
s AS (
    SELECT r.*,
        upper(replace(replace(trim(r.serial_raw), ' ', ''), chr(9), '')) AS serial0,
        nullif(upper(regexp_replace(r.mac_raw, '[^0-9A-Fa-f]', '', 'g')), '') AS mac0,
        coalesce(TRY_CAST(r.value_raw AS DOUBLE), num_parse(r.value_raw)) AS value0,
        ts_parse(blank(r.last_seen_raw)) AS last_seen0
    FROM source_rows r
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
    cu.v AS custodian, cu.k AS custodian_key, coalesce(cu.leaver, false) AS custodian_leaver,
    coalesce(cu.in_hr, false) AS custodian_in_hr,
    s2.value0 AS value,
    upper(blank(s2.hardware_uuid_raw)) AS hardware_uuid,
    s2.mac0 AS mac,
    blank(s2.hostname_raw) AS hostname,
    s2.last_seen0 AS last_seen,
    CASE
        WHEN blank(s2.asset_tag_raw) IS NULL
             AND (s2.placeholder OR nullif(s2.serial0, '') IS NULL)
             AND blank(s2.hardware_uuid_raw) IS NULL AND s2.mac0 IS NULL
        THEN CASE WHEN serial_mangled(s2.serial0)
                  THEN 'no usable identifier: serial ''' || trim(s2.serial_raw)
                       || ''' lost its digits to a spreadsheet (scientific notation)'
                       || ' and no asset tag'
                  WHEN nullif(s2.serial0, '') IS NOT NULL
                  THEN 'no usable identifier: placeholder serial ''' || trim(s2.serial_raw)
                       || ''' and no asset tag'
                  ELSE 'no usable identifier: no asset tag, serial, UUID or MAC' END
        WHEN blank(s2.value_raw) IS NOT NULL AND s2.value0 IS NULL
        THEN 'value ''' || trim(s2.value_raw) || ''' is not a number'
        WHEN blank(s2.last_seen_raw) IS NOT NULL AND s2.last_seen0 IS NULL
        THEN 'last seen ''' || trim(s2.last_seen_raw) || ''' is not a date'
    END AS bad_reason,
    blank(s2.status_raw) IS NOT NULL AND st.status IS NULL AS status_unmapped,
    CASE WHEN s2.role IN (REGISTER_ROLES) THEN coalesce(
        asset_tag, 'SN:' || coalesce(manufacturer_key, '') || '|' || serial,
        'HW:' || coalesce(hardware_uuid, mac)) END AS asset_key
FROM s2
LEFT JOIN mfr_d m ON m.raw = s2.manufacturer_raw
LEFT JOIN model_d mo ON mo.raw = s2.model_raw
LEFT JOIN loc_d lo ON lo.raw = s2.location_raw
LEFT JOIN cond_d co ON co.raw = s2.condition_raw
LEFT JOIN cust_d cu ON cu.raw = s2.custodian_raw
LEFT JOIN st_d st ON st.source = s2.source AND st.raw = s2.status_raw
"""


OTHER_LINKS = """
WITH reg AS (
    SELECT * FROM source_records WHERE bad_reason IS NULL AND role IN (REGISTER_ROLES)
), tags AS (SELECT DISTINCT asset_tag, asset_key FROM reg WHERE asset_tag IS NOT NULL),
serials AS (SELECT serial, min(asset_key) AS asset_key FROM reg
            WHERE serial IS NOT NULL GROUP BY serial),
uuids AS (SELECT hardware_uuid, min(asset_key) AS asset_key FROM reg
          WHERE hardware_uuid IS NOT NULL GROUP BY hardware_uuid),
macs AS (SELECT mac, min(asset_key) AS asset_key FROM reg
         WHERE mac IS NOT NULL GROUP BY mac),
others AS (
    SELECT * EXCLUDE (bad_reason, asset_key) FROM source_records
    WHERE bad_reason IS NULL AND role NOT IN (REGISTER_ROLES)
)
SELECT o.*,
    coalesce(t.asset_key, s.asset_key, u.asset_key, m.asset_key) AS asset_key,
    CASE WHEN t.asset_key IS NOT NULL THEN 'asset_tag'
         WHEN s.asset_key IS NOT NULL THEN 'serial'
         WHEN u.asset_key IS NOT NULL THEN 'hardware_uuid'
         WHEN m.asset_key IS NOT NULL THEN 'mac' END AS link_tier
FROM others o
LEFT JOIN tags t ON t.asset_tag = o.asset_tag
LEFT JOIN serials s ON t.asset_key IS NULL AND s.serial = o.serial
LEFT JOIN uuids u ON t.asset_key IS NULL AND s.asset_key IS NULL
                     AND u.hardware_uuid = o.hardware_uuid
LEFT JOIN macs m ON t.asset_key IS NULL AND s.asset_key IS NULL AND u.asset_key IS NULL
                    AND m.mac = o.mac
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
              AND blank(name_raw) IS NULL THEN 'no person id, email or name'
         WHEN blank(end_date_raw) IS NOT NULL AND ts_parse(blank(end_date_raw)) IS NULL
         THEN 'end date ''' || trim(end_date_raw) || ''' is not a date' END AS bad_reason
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
) GROUP BY key
""",
            "every way a custodian can be written → the person",
        )
    )
    rows_sql = " UNION ALL ".join(
        f"SELECT {lit(src.name)} AS source, {lit(src.role)} AS role, {lit(src.file)} AS file, "
        "_line AS line, "
        + ", ".join(f"{_column_expr(src.columns, f)} AS {f}_raw" for f in REGISTER_FIELDS)
        + f" FROM {src.relation}"
        for src in asset_sources
    ) or _empty(
        REGISTER_FIELDS,
        "CAST(NULL AS VARCHAR) AS source, CAST(NULL AS VARCHAR) AS role, "
        "CAST(NULL AS VARCHAR) AS file, CAST(NULL AS BIGINT) AS line",
    )
    out.append(Stage("source_rows", "normalize", rows_sql, "export rows mapped to fields", False))
    roles = ", ".join(lit(r) for r in settings.register_roles)
    out.append(
        Stage(
            "source_records",
            "normalize",
            SOURCE_RECORDS.replace("REGISTER_ROLES", roles),
            "normalized export rows, with the reason a row is kept out",
        )
    )
    has_others = any(src.role not in settings.register_roles for src in asset_sources)
    out.append(
        Stage(
            "other_links",
            "normalize",
            OTHER_LINKS.replace("REGISTER_ROLES", roles)
            if has_others
            # nothing to link: skip building the tag/serial/UUID/MAC indexes
            else "SELECT * EXCLUDE (bad_reason), CAST(NULL AS VARCHAR) AS link_tier "
            "FROM source_records WHERE false",
            "records of the other sources linked to register assets: tag, then serial, "
            "UUID, MAC (asset_key NULL: the register lacks the device)",
        )
    )
    out.append(
        Stage(
            "record_links",
            "normalize",
            f"""
SELECT * EXCLUDE (bad_reason), 'register' AS link_tier FROM source_records
WHERE bad_reason IS NULL AND role IN ({roles})
UNION ALL BY NAME
SELECT * FROM other_links
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
            _register_sql(settings, [(s.name, s.role) for s in asset_sources]),
            "one row per asset, each field from its source of truth, with provenance",
            # one source: a projection of its records, cheaper to recompute than to copy
            len(asset_sources) > 1,
        )
    )
    return out


def _register_sql(settings: EngineSection, sources: list[tuple[str, str]]) -> str:
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
        order = _precedence(settings, f, sources)
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
