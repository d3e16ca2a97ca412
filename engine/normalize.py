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

LEAVER_STATUSES = ("terminated", "inactive", "leaver", "left", "withdrawn", "former", "exited")

_TS_FORMATS = (
    "['%Y-%m-%d %H:%M:%S', '%Y-%m-%d %H:%M', '%Y-%m-%d', '%m/%d/%Y %H:%M:%S', "
    "'%m/%d/%Y %H:%M', '%m/%d/%Y %I:%M %p', '%m/%d/%Y', '%d.%m.%Y %H:%M', '%d.%m.%Y', "
    "'%Y/%m/%d %H:%M:%S', '%Y/%m/%d']"
)

MACROS = f"""
CREATE OR REPLACE MACRO ts_parse(x) AS coalesce(
    TRY_CAST(x AS TIMESTAMPTZ), CAST(try_strptime(x, {_TS_FORMATS}) AS TIMESTAMPTZ));
CREATE OR REPLACE MACRO num_parse(x) AS
    TRY_CAST(regexp_replace(x, '[$€£,\\s]|USD|EUR|GBP', '', 'g') AS DOUBLE);
CREATE OR REPLACE MACRO blank(x) AS nullif(trim(x), '');
CREATE OR REPLACE MACRO serial_clean(x) AS upper(regexp_replace(trim(x), '\\s+', '', 'g'));
CREATE OR REPLACE MACRO serial_repeated(s) AS
    length(s) > 0 AND (regexp_full_match(s, '0+') OR length(replace(s, left(s, 1), '')) = 0);
CREATE OR REPLACE MACRO lookalike(s) AS translate(s, 'OISBZ', '01582');
CREATE OR REPLACE MACRO mfr_key(m) AS trim(regexp_replace(regexp_replace(regexp_replace(
    lower(m), '[^a-z0-9]+', ' ', 'g'),
    '\\b(inc|incorporated|corporation|corp|co|ltd|llc|gmbh|company|limited)\\b', '', 'g'),
    '\\s+', ' ', 'g'));
CREATE OR REPLACE MACRO text_key(x) AS lower(regexp_replace(trim(x), '\\s+', ' ', 'g'));
CREATE OR REPLACE MACRO loc_clean(x) AS nullif(regexp_replace(regexp_replace(
    trim(x), '\\s*/\\s*', '/', 'g'), '\\s+', ' ', 'g'), '');
CREATE OR REPLACE MACRO loc_within(a, b) AS
    lower(a) = lower(b) OR starts_with(lower(a), lower(b) || '/')
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
    con.execute("CREATE OR REPLACE TABLE scope_prefixes (prefix VARCHAR)")
    if ctx.scope:
        con.executemany(
            "INSERT INTO scope_prefixes SELECT lower(loc_clean(?))", [(s,) for s in ctx.scope]
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


def _rank_expr(settings: EngineSection, field: str, source_order: dict[str, int]) -> str:
    """Precedence of a record for ``field``: position of its source (or role) in the
    configured list, then a fixed source order, then the line: always a total order."""
    order = settings.field_precedence.get(field, [])
    whens = []
    for i, name in enumerate(order):
        whens.append(f"WHEN source = {lit(name)} THEN {i}")
    for i, name in enumerate(order):
        whens.append(f"WHEN role = {lit(name)} THEN {i}")
    case = "CASE " + " ".join(whens) + " ELSE 99 END" if whens else "99"
    src_case = (
        "CASE "
        + " ".join(f"WHEN source = {lit(s)} THEN {i}" for s, i in source_order.items())
        + " ELSE 99 END"
        if source_order
        else "0"
    )
    return f"({case}, {src_case}, line)"


def stages(ctx: RunContext) -> list[Stage]:
    """The normalize stages, in order."""
    settings = ctx.settings
    asset_sources = [s for s in ctx.sources if s.role != "hr"]
    hr_sources = [s for s in ctx.sources if s.role == "hr"]
    source_order = {s.name: i for i, s in enumerate(ctx.sources)}
    out: list[Stage] = []

    if asset_sources:
        selects = []
        for src in asset_sources:
            fields = ", ".join(
                f"{_column_expr(src.columns, f)} AS {f}_raw" for f in REGISTER_FIELDS
            )
            selects.append(
                f"SELECT {lit(src.name)} AS source, {lit(src.role)} AS role, "
                f"{lit(src.file)} AS file, _line AS line, {fields} "
                f"FROM {src.relation}"
            )
        rows_sql = " UNION ALL ".join(selects)
    else:
        nulls = ", ".join(f"CAST(NULL AS VARCHAR) AS {f}_raw" for f in REGISTER_FIELDS)
        rows_sql = (
            "SELECT CAST(NULL AS VARCHAR) AS source, CAST(NULL AS VARCHAR) AS role, "
            f"CAST(NULL AS VARCHAR) AS file, CAST(NULL AS BIGINT) AS line, {nulls} WHERE false"
        )
    out.append(Stage("source_rows", "normalize", rows_sql, "export rows mapped to fields"))

    out.append(
        Stage(
            "source_records_all",
            "normalize",
            """
WITH s AS (
    SELECT r.*, serial_clean(serial_raw) AS serial0, mfr_key(manufacturer_raw) AS mkey,
           text_key(model_raw) AS modkey, text_key(location_raw) AS lockey,
           lower(trim(status_raw)) AS st_full,
           lower(trim(split_part(status_raw, '/', 1))) AS st_first
    FROM source_rows r
)
SELECT s.source, s.role, s.file, s.line,
    upper(blank(s.asset_tag_raw)) AS asset_tag,
    CASE WHEN ps.serial IS NOT NULL OR serial_repeated(s.serial0) THEN NULL
         ELSE nullif(s.serial0, '') END AS serial,
    CASE WHEN ps.serial IS NOT NULL OR serial_repeated(s.serial0) THEN s.serial_raw
         END AS placeholder_serial,
    coalesce(ma.canonical, regexp_replace(blank(s.manufacturer_raw), '\\s+', ' ', 'g'))
        AS manufacturer,
    coalesce(lower(ma.canonical), nullif(s.mkey, '')) AS manufacturer_key,
    coalesce(mo.canonical, regexp_replace(blank(s.model_raw), '\\s+', ' ', 'g')) AS model,
    coalesce(text_key(mo.canonical), nullif(s.modkey, '')) AS model_key,
    blank(s.category_raw) AS category,
    coalesce(lm.canonical, loc_clean(s.location_raw)) AS location,
    blank(s.status_raw) AS status_label,
    coalesce(sm1.status, sm2.status) AS status,
    blank(s.condition_raw) AS condition,
    condition_key(s.condition_raw) AS condition_key,
    regexp_replace(blank(s.custodian_raw), '\\s+', ' ', 'g') AS custodian,
    nullif(text_key(s.custodian_raw), '') AS custodian_key0,
    num_parse(s.value_raw) AS value,
    upper(blank(s.hardware_uuid_raw)) AS hardware_uuid,
    nullif(upper(regexp_replace(s.mac_raw, '[^0-9A-Fa-f]', '', 'g')), '') AS mac,
    blank(s.hostname_raw) AS hostname,
    ts_parse(blank(s.last_seen_raw)) AS last_seen,
    CASE
        WHEN blank(s.asset_tag_raw) IS NULL
             AND (ps.serial IS NOT NULL OR serial_repeated(s.serial0)
                  OR nullif(s.serial0, '') IS NULL)
             AND blank(s.hardware_uuid_raw) IS NULL
             AND nullif(regexp_replace(s.mac_raw, '[^0-9A-Fa-f]', '', 'g'), '') IS NULL
        THEN CASE WHEN nullif(s.serial0, '') IS NOT NULL
                  THEN 'no usable identifier: placeholder serial ''' || trim(s.serial_raw)
                       || ''' and no asset tag'
                  ELSE 'no usable identifier: no asset tag, serial, UUID or MAC' END
        WHEN blank(s.value_raw) IS NOT NULL AND num_parse(s.value_raw) IS NULL
        THEN 'value ''' || trim(s.value_raw) || ''' is not a number'
        WHEN blank(s.last_seen_raw) IS NOT NULL AND ts_parse(blank(s.last_seen_raw)) IS NULL
        THEN 'last seen ''' || trim(s.last_seen_raw) || ''' is not a date'
    END AS bad_reason,
    blank(s.status_raw) IS NOT NULL AND coalesce(sm1.status, sm2.status) IS NULL
        AS status_unmapped
FROM s
LEFT JOIN placeholder_serials ps ON ps.serial = s.serial0
LEFT JOIN mfr_alias ma ON ma.key = s.mkey
LEFT JOIN model_alias mo ON mo.key = s.modkey
LEFT JOIN location_map lm ON lm.key = s.lockey
LEFT JOIN status_map sm1 ON sm1.source = s.source AND sm1.raw = s.st_full
LEFT JOIN status_map sm2 ON sm2.source = s.source AND sm2.raw = s.st_first
""",
            "normalized export rows, with the reason a row is kept out",
        )
    )

    if hr_sources:
        selects = []
        for src in hr_sources:
            fields = ", ".join(f"{_column_expr(src.columns, f)} AS {f}_raw" for f in HR_FIELDS)
            selects.append(
                f"SELECT {lit(src.name)} AS source, {lit(src.file)} AS file, "
                f"_line AS line, {fields} FROM {src.relation}"
            )
        hr_sql = " UNION ALL ".join(selects)
    else:
        nulls = ", ".join(f"CAST(NULL AS VARCHAR) AS {f}_raw" for f in HR_FIELDS)
        hr_sql = (
            "SELECT CAST(NULL AS VARCHAR) AS source, CAST(NULL AS VARCHAR) AS file, "
            f"CAST(NULL AS BIGINT) AS line, {nulls} WHERE false"
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
SELECT key, arg_min(person_key, (line, source)) AS person_key,
       arg_min(leaver, (line, source)) AS leaver
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
    out.append(
        Stage(
            "source_records",
            "normalize",
            """
SELECT r.* EXCLUDE (bad_reason, custodian_key0),
    coalesce(pk.person_key, r.custodian_key0) AS custodian_key,
    coalesce(pk.leaver, false) AS custodian_leaver,
    pk.person_key IS NOT NULL AS custodian_in_hr
FROM source_records_all r
LEFT JOIN person_keys pk ON pk.key = r.custodian_key0
WHERE r.bad_reason IS NULL
""",
            "usable records with custodians resolved against HR",
        )
    )
    roles = ", ".join(lit(r) for r in settings.register_roles)
    out.append(
        Stage(
            "register_records",
            "normalize",
            f"""
SELECT *, coalesce(asset_tag, 'SN:' || coalesce(manufacturer_key, '') || '|' || serial,
                   'HW:' || coalesce(hardware_uuid, mac)) AS asset_key
FROM source_records WHERE role IN ({roles})
""",
            "records of the register sources, each with its asset key",
        )
    )
    out.append(
        Stage(
            "record_links",
            "normalize",
            f"""
WITH tags AS (SELECT DISTINCT asset_tag, asset_key FROM register_records
              WHERE asset_tag IS NOT NULL),
serials AS (SELECT serial, min(asset_key) AS asset_key FROM register_records
            WHERE serial IS NOT NULL GROUP BY serial),
uuids AS (SELECT hardware_uuid, min(asset_key) AS asset_key FROM register_records
          WHERE hardware_uuid IS NOT NULL GROUP BY hardware_uuid),
macs AS (SELECT mac, min(asset_key) AS asset_key FROM register_records
         WHERE mac IS NOT NULL GROUP BY mac),
others AS (SELECT * FROM source_records WHERE role NOT IN ({roles}))
SELECT r.*, 'register' AS link_tier FROM register_records r
UNION ALL BY NAME
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
""",
            "every record linked to a register asset: tag, then serial, then UUID, then MAC",
        )
    )
    picks = []
    for f in (
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
    ):
        rank = _rank_expr(settings, f, source_order)
        flt = f"FILTER (WHERE {f} IS NOT NULL)"
        picks.append(f"arg_min({f}, {rank}) {flt} AS {f}")
        picks.append(f"arg_min(source, {rank}) {flt} AS {f}_source")
        if f == "status":
            picks.append(f"arg_min(status_label, {rank}) {flt} AS status_label")
        if f == "manufacturer":
            picks.append(f"arg_min(manufacturer_key, {rank}) {flt} AS manufacturer_key")
        if f == "model":
            picks.append(f"arg_min(model_key, {rank}) {flt} AS model_key")
        if f == "condition":
            picks.append(f"arg_min(condition_key, {rank}) {flt} AS condition_key")
        if f == "custodian":
            picks.append(f"arg_min(custodian_key, {rank}) {flt} AS custodian_key")
            picks.append(f"arg_min(custodian_leaver, {rank}) {flt} AS custodian_leaver")
    out.append(
        Stage(
            "register",
            "normalize",
            f"""
SELECT asset_key, {", ".join(picks)},
    max(last_seen) AS last_seen,
    arg_max(source, last_seen) FILTER (WHERE last_seen IS NOT NULL) AS last_seen_source,
    string_agg(DISTINCT source, ',' ORDER BY source) AS sources
FROM record_links WHERE asset_key IS NOT NULL
GROUP BY asset_key
HAVING bool_or(link_tier = 'register')
""",
            "one row per asset, each field from its source of truth, with provenance",
        )
    )
    return out
