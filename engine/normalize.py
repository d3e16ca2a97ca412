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

import re

import duckdb

from tagsweep.config.engine import HR_FIELDS, RECORD_FIELDS, REGISTER_FIELDS, EngineSection
from tagsweep.engine.presets import (
    COMMON_STATUS_MAP,
    GENERIC,
    PLACEHOLDER_MANUFACTURERS,
    PRESETS,
    Preset,
    conventions,
)
from tagsweep.engine.stages import RunContext, SourceInput, Stage, ident, lit

#: Every field a source row carries into the normalize stages.
EXPORT_FIELDS: tuple[str, ...] = REGISTER_FIELDS + RECORD_FIELDS

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
    "hewlett packard development": "HP",
    "hp development": "HP",
    "ibm": "IBM",
    "international business machines": "IBM",
    "asus": "ASUS",
    "asustek computer": "ASUS",
    "acer": "Acer",
    "fujitsu": "Fujitsu",
    "fujitsu technology solutions": "Fujitsu",
    "arista": "Arista",
    "arista networks": "Arista",
    "ubiquiti": "Ubiquiti",
    "ubiquiti networks": "Ubiquiti",
    "palo alto networks": "Palo Alto Networks",
    "fortinet": "Fortinet",
    "netapp": "NetApp",
}

#: Employment statuses of people who left (case-insensitive); "false" is a directory's
#: accountEnabled, "deprovisioned" Okta's status for a removed user.
LEAVER_STATUSES = (
    "terminated", "inactive", "leaver", "left", "withdrawn", "former", "exited",
    "false", "disabled", "deprovisioned",
)  # fmt: skip

_TS_FORMATS = (
    "['%Y-%m-%d %H:%M:%S', '%Y-%m-%d %H:%M', '%Y-%m-%d %I:%M %p', '%Y-%m-%d %I:%M:%S %p', "
    "'%Y-%m-%d', '%m/%d/%Y %H:%M:%S', '%m/%d/%Y %H:%M', '%m/%d/%Y %I:%M:%S %p', "
    "'%m/%d/%Y %I:%M %p', '%m/%d/%Y', '%d.%m.%Y %H:%M:%S', '%d.%m.%Y %H:%M', '%d.%m.%Y', "
    "'%Y/%m/%d %H:%M:%S', '%Y/%m/%d', '%d-%b-%Y', '%d %b %Y', '%b %d, %Y', "
    "'%Y-%m-%d at %I:%M %p', '%Y-%m-%d at %H:%M', '%m/%d/%Y, %I:%M:%S %p', "
    "'%m/%d/%Y, %I:%M %p', '%m/%d/%Y, %H:%M:%S', '%d.%m.%Y, %H:%M:%S']"
)
#: The same, day first where day and month could swap ("03/04/2026" is 3 April).
_TS_FORMATS_DMY = _TS_FORMATS.replace("%m/%d/%Y", "%d/%m/%Y")

MACROS = f"""
-- dates that mean "none": .NET's DateTime.MinValue / MaxValue, SAP's 00.00.0000
CREATE OR REPLACE MACRO date_sentinel(x) AS
    left(ltrim(x), 5) IN ('0001-', '9999-', '0000-', '00.00', '1/1/0', '01/01')
        AND (contains(x, '0001') OR contains(x, '9999') OR contains(x, '0000'))
    OR contains(x, '.9999') OR contains(x, '/9999');
-- Excel's serial day numbers (XLSX cells not formatted as dates): 1927 to 2173
CREATE OR REPLACE MACRO excel_serial(x) AS CASE
    WHEN regexp_full_match(x, '[1-9][0-9]{{4}}([.][0-9]+)?')
    THEN TIMESTAMPTZ '1899-12-30 00:00:00+00'
         + to_microseconds(CAST(round(CAST(x AS DOUBLE) * 86400000000) AS BIGINT)) END;
CREATE OR REPLACE MACRO ts_parse0(x, df) AS coalesce(
    TRY_CAST(x AS TIMESTAMPTZ),
    CAST(CASE WHEN df THEN try_strptime(x, {_TS_FORMATS_DMY})
              ELSE try_strptime(x, {_TS_FORMATS}) END AS TIMESTAMPTZ),
    excel_serial(x));
CREATE OR REPLACE MACRO ts_parse_as(x, df) AS CASE
    WHEN x IS NULL OR date_sentinel(x) THEN NULL ELSE ts_parse0(trim(x), df) END;
CREATE OR REPLACE MACRO ts_parse(x) AS ts_parse_as(x, false);
-- a date that is written but is neither a date nor a "none" sentinel
CREATE OR REPLACE MACRO ts_bad(x, df) AS
    nullif(trim(x), '') IS NOT NULL AND NOT date_sentinel(x) AND ts_parse0(trim(x), df) IS NULL;
-- currency symbols and ISO codes, spaces (also no-break ones) and Swiss apostrophes go;
-- "(1,234.00)" and SAP's trailing minus "1.234,00-" are negative
CREATE OR REPLACE MACRO money_text0(x) AS regexp_replace(upper(trim(x)),
    '[$€£¥\\s\\x{{a0}}\\x{{202f}}''\\x{{2019}}]'
    || '|USD|EUR|GBP|CHF|JPY|CAD|AUD|SEK|NOK|DKK|PLN|CZK|INR', '', 'g');
CREATE OR REPLACE MACRO money_text(x) AS CASE
    WHEN starts_with(money_text0(x), '(') AND ends_with(money_text0(x), ')')
    THEN '-' || trim(money_text0(x), '()')
    WHEN ends_with(money_text0(x), '-') THEN '-' || rtrim(money_text0(x), '-')
    ELSE money_text0(x) END;
-- "1.299,00", "1299,50" (decimal comma, as many European exports write money) vs
-- "1,299.00", "1,299" (thousands commas: a comma before exactly three digits is one)
CREATE OR REPLACE MACRO num_parse(x) AS CASE
    WHEN regexp_full_match(money_text(x),
        '-?[0-9]{{1,3}}([.][0-9]{{3}})+,[0-9]+|-?[0-9]+,([0-9]{{1,2}}|[0-9]{{4,}})')
    THEN TRY_CAST(replace(replace(money_text(x), '.', ''), ',', '.') AS DOUBLE)
    ELSE TRY_CAST(replace(money_text(x), ',', '') AS DOUBLE) END;
-- a source that writes a decimal comma: every '.' groups thousands ("1.899" is 1899)
CREATE OR REPLACE MACRO num_parse_dc(x) AS
    TRY_CAST(replace(replace(money_text(x), '.', ''), ',', '.') AS DOUBLE);
CREATE OR REPLACE MACRO num_parse_as(x, dc) AS CASE
    WHEN x IS NULL THEN NULL
    WHEN dc THEN num_parse_dc(x)
    ELSE coalesce(TRY_CAST(x AS DOUBLE), num_parse(x)) END;
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
-- Snipe-IT writes a status as label plus status meta: "Ready to Deploy Deployed" (list
-- export), "Ready to Deploy (deployed)" (custom report)
CREATE OR REPLACE MACRO status_meta(x) AS nullif(lower(regexp_extract(trim(x),
    '(?i)(?:^|\\s|\\()(deployed|pending|archived|deployable|undeployable)\\)?$', 1)), '');
CREATE OR REPLACE MACRO status_label_part(x) AS lower(trim(regexp_replace(trim(x),
    '(?i)\\s*\\(?\\s*(deployed|pending|archived|deployable|undeployable)\\s*\\)?$', '')));
-- a username as a person key: lower case, '.' and '_' as spaces, so that the local
-- part of ana.ng@corp.example is the name "Ana Ng"
CREATE OR REPLACE MACRO user_key(x) AS
    nullif(trim(regexp_replace(lower(x), '[._\\s]+', ' ', 'g')), '');
-- a user written "First Last (username)": the username
CREATE OR REPLACE MACRO user_in_parens(x) AS
    user_key(regexp_extract(x, '\\(([^()]*)\\)\\s*$', 1));
CREATE OR REPLACE MACRO name_before_parens(x) AS
    nullif(text_key(regexp_replace(x, '\\s*\\([^()]*\\)\\s*$', '')), '');
CREATE OR REPLACE MACRO email_local(x) AS CASE
    WHEN contains(x, '@') THEN user_key(split_part(trim(x), '@', 1)) END;
-- Lenovo machine-type models as an MDM reports them ("20XW0026US"): not comparable
-- with a marketing name unless an alias maps their first four characters
CREATE OR REPLACE MACRO lenovo_mtm(x) AS regexp_full_match(upper(x), '[0-9]{{2}}[A-Z0-9]{{8}}');
-- one model name is the other's first words ("macbook pro" / "macbook pro 14"): the
-- same model, written with more or less detail
CREATE OR REPLACE MACRO model_within(a, b) AS
    a = b OR starts_with(a, b || ' ') OR starts_with(b, a || ' ');
-- the numeric core of an asset tag ("AST-000123", "000123", "123" share "123")
CREATE OR REPLACE MACRO tag_core(t) AS nullif(ltrim(regexp_extract(t, '([0-9]+)$', 1), '0'), '');
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
    con.execute("CREATE OR REPLACE TABLE placeholder_manufacturers (key VARCHAR PRIMARY KEY)")
    con.executemany(
        "INSERT INTO placeholder_manufacturers VALUES (?)",
        [(p,) for p in sorted(set(PLACEHOLDER_MANUFACTURERS))],
    )
    con.execute(
        f"CREATE OR REPLACE MACRO strip_mfr(m) AS "
        f"regexp_replace(m, {lit(manufacturer_prefix(settings))}, '')"
    )


_CORPORATE = (
    r"(?:,?\s+(?:inc|incorporated|corporation|corp|co|ltd|llc|gmbh|ag|company|limited)\.?)*"
)


def manufacturer_prefix(settings: EngineSection) -> str:
    """A regular expression for a manufacturer's name leading a model, as ServiceNow's
    display values write it ("Dell Inc. Latitude 7440")."""
    names = sorted(
        {*MANUFACTURER_ALIASES, *(a.lower() for a in settings.manufacturer_aliases)},
        key=lambda n: (-len(n), n),
    )
    words = "|".join(re.escape(n).replace("\\ ", "[\\s-]+") for n in names)
    return f"(?i)^(?:{words}){_CORPORATE}\\s+"


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
            _register_sql(settings, [(s.name, s.role) for s in asset_sources]),
            "one row per asset, each field from its source of truth, with provenance",
            # one source: a projection of its records, cheaper to recompute than to copy
            len(asset_sources) > 1,
        )
    )
    return out


def primary_source(ctx: RunContext) -> str | None:
    """The register source the others link to: the first source in a register role
    (in the order of ``field_precedence.asset_tag``, then input order)."""
    settings = ctx.settings
    pairs = [(s.name, str(s.role)) for s in ctx.sources if s.role in settings.register_roles]
    order = precedence(settings, "asset_tag", pairs)
    return order[0] if order else None


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
