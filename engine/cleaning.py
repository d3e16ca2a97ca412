"""The vocabulary every source is cleaned into, before anything is compared.

The seed method: "If you compare data before cleaning that up, you'll end up chasing
mismatches that aren't real." This module holds what normalize cleans with: placeholder
serials that BIOS vendors ship, manufacturer aliases, the statuses that mean a person
left, the SQL macros that parse dates, money and identifiers the way real exports write
them, and the lookup tables (status translation, aliases, placeholders) built from the
presets and the configuration.
"""

from __future__ import annotations

import re

import duckdb

from tagsweep.config.engine import EngineSection
from tagsweep.engine.presets import COMMON_STATUS_MAP, PLACEHOLDER_MANUFACTURERS, PRESETS
from tagsweep.engine.stages import RunContext, lit

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
