"""Stage 3, match: which register asset each counted item is, and how sure we are.

Keys are tried in tiers, strongest first, as the seed prescribes: the asset tag (read
from a barcode, or decoded from the RFID EPC by the configured scheme), then the serial
number. Anything weaker is never a silent merge: a serial that only matches after
folding look-alike characters (O/0, I/1, S/5, B/8, Z/2, the misreads the seed warns
about) is a *probable match for review*, and a tag whose serial disagrees with the
register is an *identity conflict* ("set the record aside for review instead of forcing
a merge").
"""

from __future__ import annotations

import string

from tagsweep.engine.stages import RunContext, Stage, lit
from tagsweep.epc import GIAI96_PARTITIONS

ASCII_EPC_PATTERN = "(2[1-9A-F]|[3-6][0-9A-F]|7[0-9A-E])+(00)*"


def tag_format_sql(tag_format: str, ref: str, company: str) -> str:
    """SQL that renders ``tag_format`` (validated by the config) like ``str.format``."""
    parts: list[str] = []
    for text, name, spec, _ in string.Formatter().parse(tag_format):
        if text:
            parts.append(lit(text))
        if name == "company_prefix":
            parts.append(company)
        elif name == "ref":
            digits = f"CAST({ref} AS VARCHAR)"
            if spec and spec != "d":
                width = int(spec[1:-1])
                digits = (
                    f"(CASE WHEN length({digits}) >= {width} THEN {digits} "
                    f"ELSE lpad({digits}, {width}, '0') END)"
                )
            parts.append(digits)
    return " || ".join(parts) if parts else "''"


def epc_macros(ctx: RunContext) -> str:
    """``giai_tag(epc)``, ``ascii_tag(epc)`` and ``epc_tag(epc)`` as DuckDB macros.

    The same decode as :mod:`tagsweep.epc`, column-at-a-time, so a million reads never
    pass through Python; the test suite checks both agree.
    """
    settings = ctx.settings
    ref_bits = " ".join(f"WHEN {p} THEN {r}" for p, (_, _, r) in GIAI96_PARTITIONS.items())
    cp_bits = " ".join(f"WHEN {p} THEN {c}" for p, (c, _, _) in GIAI96_PARTITIONS.items())
    cp_digits = " ".join(f"WHEN {p} THEN {d}" for p, (_, d, _) in GIAI96_PARTITIONS.items())
    prefix = settings.giai_company_prefix
    prefix_check = (
        f"AND lpad(CAST(giai_company(e) AS VARCHAR), giai_cp_digits(e), '0') = {lit(prefix)}"
        if prefix
        else ""
    )
    company_text = "lpad(CAST(giai_company(e) AS VARCHAR), giai_cp_digits(e), '0')"
    render = tag_format_sql(settings.giai_asset_tag_format, "giai_ref(e)", company_text)
    scheme = settings.epc_scheme
    dispatch = {
        "giai96": "giai_tag(e)",
        "ascii": "ascii_tag(e)",
        "mapping": "(SELECT m.asset_tag FROM epc_map m WHERE m.epc = e)",
    }[scheme]
    return f"""
CREATE OR REPLACE MACRO giai_value(e) AS TRY_CAST('0x' || substr(e, 3, 22) AS HUGEINT);
CREATE OR REPLACE MACRO giai_partition(e) AS CAST((giai_value(e) >> 82) & 7 AS INTEGER);
CREATE OR REPLACE MACRO giai_ref_bits(e) AS CASE giai_partition(e) {ref_bits} END;
CREATE OR REPLACE MACRO giai_cp_bits(e) AS CASE giai_partition(e) {cp_bits} END;
CREATE OR REPLACE MACRO giai_cp_digits(e) AS CASE giai_partition(e) {cp_digits} END;
CREATE OR REPLACE MACRO giai_company(e) AS
    (giai_value(e) >> giai_ref_bits(e)) & ((CAST(1 AS HUGEINT) << giai_cp_bits(e)) - 1);
CREATE OR REPLACE MACRO giai_ref(e) AS
    giai_value(e) & ((CAST(1 AS HUGEINT) << giai_ref_bits(e)) - 1);
CREATE OR REPLACE MACRO is_giai96(e) AS
    length(e) = 24 AND left(e, 2) = '34' AND regexp_full_match(e, '[0-9A-F]+')
    AND giai_partition(e) < 7
    AND giai_company(e) < CAST(10 AS HUGEINT) ** giai_cp_digits(e);
CREATE OR REPLACE MACRO giai_tag(e) AS
    CASE WHEN is_giai96(e) {prefix_check} THEN {render} END;
CREATE OR REPLACE MACRO ascii_tag(e) AS
    CASE WHEN regexp_full_match(e, '{ASCII_EPC_PATTERN}')
         THEN decode(unhex(regexp_replace(e, '(00)+$', ''))) END;
CREATE OR REPLACE MACRO epc_tag(e) AS CASE WHEN e IS NOT NULL THEN {dispatch} END;
"""


def stages(_ctx: RunContext) -> list[Stage]:
    """Observations normalized, grouped per counted item, then matched in tiers."""
    return [
        Stage(
            "observations_all",
            "match",
            """
WITH c AS (
    SELECT *, upper(regexp_replace(regexp_replace(trim(epc), '^0[xX]', ''), '[\\s:\\-]', '',
                                   'g')) AS epc0,
           serial_clean(serial) AS serial0
    FROM count_rows
), d AS (
    SELECT c.*, CASE WHEN regexp_full_match(c.epc0, '([0-9A-F]{2})+') THEN c.epc0 END AS epc1
    FROM c
)
SELECT d.file, d.line, coalesce(blank(d.session_id), d.file) AS session_id, blank(d.site) AS site,
    lower(blank(d.method)) AS method,
    coalesce(lm.canonical, loc_clean(d.location)) AS location,
    d.epc1 AS epc,
    coalesce(upper(blank(d.asset_tag)), upper(epc_tag(d.epc1))) AS asset_tag,
    CASE WHEN ps.serial IS NOT NULL OR serial_repeated(d.serial0) THEN NULL
         ELSE nullif(d.serial0, '') END AS serial,
    ts_parse(blank(d.first_seen)) AS first_seen,
    ts_parse(blank(d.last_seen)) AS last_seen,
    coalesce(TRY_CAST(blank(d.read_count) AS BIGINT), 1) AS read_count,
    blank(d.reader) AS reader, blank(d.operator) AS operator,
    regexp_replace(blank(d.custodian), '\\s+', ' ', 'g') AS custodian,
    coalesce(pk.person_key, nullif(text_key(d.custodian), '')) AS custodian_key,
    blank(d.condition) AS condition, condition_key(d.condition) AS condition_key,
    CASE
        WHEN loc_clean(d.location) IS NULL THEN 'location is empty'
        WHEN nullif(d.epc0, '') IS NOT NULL AND d.epc1 IS NULL
             AND blank(d.asset_tag) IS NULL AND nullif(d.serial0, '') IS NULL
        THEN 'EPC ''' || trim(d.epc) || ''' is not hex'
        WHEN d.epc1 IS NULL AND blank(d.asset_tag) IS NULL
             AND (nullif(d.serial0, '') IS NULL OR ps.serial IS NOT NULL
                  OR serial_repeated(d.serial0))
        THEN 'no EPC, asset tag or usable serial'
        WHEN blank(d.last_seen) IS NOT NULL AND ts_parse(blank(d.last_seen)) IS NULL
        THEN 'last_seen ''' || trim(d.last_seen) || ''' is not a time'
    END AS bad_reason
FROM d
LEFT JOIN placeholder_serials ps ON ps.serial = d.serial0
LEFT JOIN location_map lm ON lm.key = text_key(d.location)
LEFT JOIN person_keys pk ON pk.key = text_key(d.custodian)
""",
            "count rows normalized; EPCs decoded to asset tags by the configured scheme",
        ),
        Stage(
            "observed_items",
            "match",
            """
WITH o AS (
    SELECT *, coalesce(asset_tag, 'SN:' || serial, 'EPC:' || epc) AS obs_key,
           (coalesce(last_seen, TIMESTAMPTZ '1970-01-01 00:00:00+00'), file, line) AS ord
    FROM observations_all WHERE bad_reason IS NULL
)
SELECT obs_key,
    arg_max(asset_tag, ord) AS asset_tag,
    arg_max(serial, ord) FILTER (WHERE serial IS NOT NULL) AS serial,
    min(epc) AS epc,
    arg_max(location, ord) AS location,
    arg_max(custodian, ord) FILTER (WHERE custodian IS NOT NULL) AS custodian,
    arg_max(custodian_key, ord) FILTER (WHERE custodian_key IS NOT NULL) AS custodian_key,
    arg_max(condition, ord) FILTER (WHERE condition IS NOT NULL) AS condition,
    arg_max(condition_key, ord) FILTER (WHERE condition_key IS NOT NULL) AS condition_key,
    string_agg(DISTINCT session_id, ',' ORDER BY session_id) AS session_id,
    string_agg(DISTINCT method, ',' ORDER BY method) AS methods,
    max(last_seen) AS last_seen,
    sum(read_count) AS read_count,
    count(*) AS observation_count
FROM o GROUP BY obs_key
""",
            "one row per counted item (an asset seen several times is counted once)",
        ),
        Stage(
            "matches",
            "match",
            """
WITH reg AS (
    SELECT asset_key, asset_tag, serial FROM register
), t1 AS (
    SELECT o.obs_key, r.asset_key, 'asset_tag' AS tier
    FROM observed_items o JOIN reg r ON r.asset_tag = o.asset_tag
), sn AS (
    SELECT serial, min(asset_key) AS asset_key FROM reg WHERE serial IS NOT NULL
    GROUP BY serial
), t2 AS (
    SELECT o.obs_key, sn.asset_key, 'serial' AS tier
    FROM observed_items o JOIN sn ON sn.serial = o.serial
    WHERE o.obs_key NOT IN (SELECT obs_key FROM t1)
), fold AS (
    SELECT lookalike(serial) AS serial_fold, min(asset_key) AS asset_key FROM reg
    WHERE serial IS NOT NULL GROUP BY 1 HAVING count(DISTINCT asset_key) = 1
), t3 AS (
    SELECT o.obs_key, f.asset_key, 'lookalike_serial' AS tier
    FROM observed_items o JOIN fold f ON f.serial_fold = lookalike(o.serial)
    WHERE o.obs_key NOT IN (SELECT obs_key FROM t1)
      AND o.obs_key NOT IN (SELECT obs_key FROM t2)
), m AS (SELECT * FROM t1 UNION ALL SELECT * FROM t2 UNION ALL SELECT * FROM t3)
SELECT m.asset_key, m.obs_key, m.tier,
    CASE
        WHEN m.tier = 'lookalike_serial' THEN 'probable'
        WHEN m.tier = 'asset_tag' AND o.serial IS NOT NULL AND r.serial IS NOT NULL
             AND lookalike(o.serial) <> lookalike(r.serial) THEN 'identity_conflict'
        WHEN m.tier = 'serial' AND o.asset_tag IS NOT NULL AND r.asset_tag IS NOT NULL
             AND o.asset_tag <> r.asset_tag THEN 'identity_conflict'
        ELSE 'confirmed'
    END AS match_status,
    o.session_id, o.asset_tag AS observed_asset_tag, o.serial AS observed_serial, o.epc,
    o.location AS found_location, o.custodian AS found_custodian,
    o.custodian_key AS found_custodian_key, o.condition AS found_condition,
    o.condition_key AS found_condition_key, o.last_seen, o.methods
FROM m
JOIN observed_items o ON o.obs_key = m.obs_key
JOIN reg r ON r.asset_key = m.asset_key
""",
            "register asset ↔ counted item, with the tier that matched and a verdict",
        ),
    ]
