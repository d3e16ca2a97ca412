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

from tagsweep.engine.normalize import custodian_dictionary
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


def epc_tag_sql(ctx: RunContext) -> str:
    """SQL for the asset tag of an EPC, over the columns ``epc1`` (clean hex), ``gv``
    (the 88 bits after a GIAI-96 header, as HUGEINT) and ``gpart`` (its partition).

    The same decode as :mod:`tagsweep.epc`, column-at-a-time, so a million reads never
    pass through Python; the test suite checks both agree. With a configured company
    prefix the partition is known in advance and the check is two integer compares.
    """
    settings = ctx.settings
    if settings.epc_scheme == "ascii":
        return (
            f"CASE WHEN regexp_full_match(epc1, '{ASCII_EPC_PATTERN}') "
            "THEN decode(unhex(regexp_replace(epc1, '(00)+$', ''))) END"
        )
    if settings.epc_scheme == "mapping":
        return "epc_map_tag"
    prefix = settings.giai_company_prefix
    branches = []
    for part, (cp_bits, cp_digits, ref_bits) in GIAI96_PARTITIONS.items():
        if prefix is not None and len(prefix) != cp_digits:
            continue
        ref = f"CAST(gv & {(1 << ref_bits) - 1} AS BIGINT)"
        company = f"((gv >> {ref_bits}) & {(1 << cp_bits) - 1})"
        if prefix is not None:
            check = f"{company} = {int(prefix)}"
            company_text = lit(prefix)
        else:
            check = f"{company} < {10**cp_digits}"
            company_text = f"lpad(CAST(CAST({company} AS BIGINT) AS VARCHAR), {cp_digits}, '0')"
        render = tag_format_sql(settings.giai_asset_tag_format, ref, company_text)
        branches.append(f"WHEN gpart = {part} AND {check} THEN {render}")
    if not branches:
        return "CAST(NULL AS VARCHAR)"
    return "CASE " + " ".join(branches) + " END"


OBSERVATIONS = """
WITH loc_d AS (
    SELECT raw, coalesce(lm.canonical, loc_clean(raw)) AS v
    FROM (SELECT DISTINCT location AS raw FROM count_rows)
    LEFT JOIN location_map lm ON lm.key = text_key(raw)
), cust_d AS CUSTODIAN_DICTIONARY, c AS (
    SELECT *,
        upper(replace(replace(replace(replace(trim(epc), ' ', ''), ':', ''), '-', ''),
                      chr(9), '')) AS epc00,
        upper(replace(replace(trim(serial), ' ', ''), chr(9), '')) AS serial0
    FROM count_rows
), c1 AS (
    SELECT c.*, CASE WHEN regexp_full_match(epc0, '([0-9A-F]{2})+') THEN epc0 END AS epc1
    FROM (SELECT *, CASE WHEN starts_with(epc00, '0X') THEN substr(epc00, 3) ELSE epc00 END
                        AS epc0 FROM c) c
), c2 AS (
    SELECT c1.*, CASE WHEN length(epc1) = 24 AND left(epc1, 2) = '34'
                      THEN TRY_CAST('0x' || substr(epc1, 3, 22) AS HUGEINT) END AS gv
    FROM c1
), c3 AS (
    SELECT c2.*, CAST((gv >> 82) & 7 AS INTEGER) AS gpart FROM c2
), d AS (
    SELECT c3.*, upper(EPC_TAG) AS epc_tag FROM c3 EPC_JOIN
)
SELECT *, CASE WHEN bad_reason IS NULL
                 THEN coalesce(asset_tag, 'SN:' || serial, 'EPC:' || epc) END AS obs_key
FROM (
SELECT d.file, d.line, coalesce(blank(d.session_id), d.file) AS session_id,
    blank(d.site) AS site, lower(blank(d.method)) AS method,
    lo.v AS location,
    d.epc1 AS epc,
    coalesce(upper(blank(d.asset_tag)), d.epc_tag) AS asset_tag,
    CASE WHEN ps.serial IS NOT NULL OR serial_unusable(d.serial0) THEN NULL
         ELSE nullif(d.serial0, '') END AS serial,
    d.first_seen, d.last_seen,
    coalesce(TRY_CAST(d.read_count AS BIGINT), 1) AS read_count,
    blank(d.reader) AS reader, blank(d.operator) AS operator,
    cu.v AS custodian, cu.k AS custodian_key,
    blank(d.condition) AS condition, condition_key(d.condition) AS condition_key,
    CASE
        WHEN lo.v IS NULL THEN 'location is empty'
        WHEN nullif(d.epc0, '') IS NOT NULL AND d.epc1 IS NULL
             AND blank(d.asset_tag) IS NULL AND nullif(d.serial0, '') IS NULL
        THEN 'EPC ''' || trim(d.epc) || ''' is not hex'
        WHEN d.epc1 IS NULL AND blank(d.asset_tag) IS NULL
             AND (nullif(d.serial0, '') IS NULL OR ps.serial IS NOT NULL
                  OR serial_unusable(d.serial0))
        THEN 'no EPC, asset tag or usable serial'
        WHEN d.last_seen_text IS NOT NULL AND d.last_seen IS NULL
        THEN 'last_seen ''' || d.last_seen_text || ''' is not a time'
    END AS bad_reason
FROM d
LEFT JOIN placeholder_serials ps ON ps.serial = d.serial0
LEFT JOIN loc_d lo ON lo.raw = d.location
LEFT JOIN cust_d cu ON cu.raw = d.custodian
)
"""

#: Most counted items are seen once; only the few seen several times need the costly
#: "latest non-null value" aggregation, so the two are handled apart. A view: matches
#: reads it once, so storing it would only copy every counted item.
OBSERVED_ITEMS = """
WITH k AS (
    SELECT obs_key, count(*) AS n FROM observations_all
    WHERE obs_key IS NOT NULL GROUP BY obs_key
), repeated AS (
    -- the few items seen more than once: joins against this set are cheap
    SELECT obs_key FROM k WHERE n > 1
), single AS (
    SELECT o.obs_key, o.asset_tag, o.serial, o.epc, o.location, o.custodian, o.custodian_key,
        o.condition, o.condition_key, o.session_id, o.method AS methods, o.last_seen,
        o.read_count, CAST(1 AS BIGINT) AS observation_count
    FROM observations_all o ANTI JOIN repeated s ON s.obs_key = o.obs_key
    WHERE o.obs_key IS NOT NULL
), multi AS (
    SELECT *, (coalesce(last_seen, TIMESTAMPTZ '1970-01-01 00:00:00+00'), file, line) AS ord
    FROM observations_all o SEMI JOIN repeated s ON s.obs_key = o.obs_key
)
SELECT * FROM single
UNION ALL
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
FROM multi GROUP BY obs_key
"""

#: One row per counted item: the register asset it is (``asset_key`` NULL: none, an
#: unrecorded item), the tier that matched and the verdict.
MATCHES = """
WITH reg AS NOT MATERIALIZED (
    SELECT asset_key, asset_tag, serial FROM register
), tags AS (
    SELECT asset_tag, min(asset_key) AS asset_key, arg_min(serial, asset_key) AS reg_serial
    FROM reg WHERE asset_tag IS NOT NULL GROUP BY asset_tag
), counted_serials AS (
    SELECT DISTINCT serial FROM observations_all WHERE obs_key IS NOT NULL AND serial IS NOT NULL
), sn AS (
    -- only serials some counted item carries (an RFID count carries none)
    SELECT serial, min(asset_key) AS asset_key, arg_min(asset_tag, asset_key) AS reg_tag
    FROM reg SEMI JOIN counted_serials c ON c.serial = reg.serial
    GROUP BY serial
), m0 AS (
    SELECT o.*, coalesce(t.asset_key, s.asset_key) AS ak,
        CASE WHEN t.asset_key IS NOT NULL THEN 'asset_tag'
             WHEN s.asset_key IS NOT NULL THEN 'serial' END AS tier0,
        t.reg_serial, s.reg_tag
    FROM observed_items o
    LEFT JOIN tags t ON t.asset_tag = o.asset_tag
    LEFT JOIN sn s ON t.asset_key IS NULL AND s.serial = o.serial
), need AS (
    -- look-alike folding only for counted serials the register lacks exactly (a handful)
    SELECT DISTINCT lookalike(c.serial) AS f FROM counted_serials c
    ANTI JOIN (SELECT serial FROM sn) x ON x.serial = c.serial
), fold AS (
    SELECT lookalike(r.serial) AS serial_fold, min(r.asset_key) AS asset_key
    FROM reg r SEMI JOIN need n ON n.f = lookalike(r.serial)
    WHERE r.serial IS NOT NULL GROUP BY 1 HAVING count(DISTINCT r.asset_key) = 1
), m AS (
    SELECT m0.* EXCLUDE (ak, tier0), coalesce(m0.ak, f.asset_key) AS asset_key,
        coalesce(m0.tier0, CASE WHEN f.asset_key IS NOT NULL THEN 'lookalike_serial' END)
            AS tier
    FROM m0 LEFT JOIN fold f ON m0.ak IS NULL AND f.serial_fold = lookalike(m0.serial)
)
SELECT m.asset_key, m.obs_key, m.tier,
    CASE
        WHEN m.asset_key IS NULL THEN NULL
        WHEN m.tier = 'lookalike_serial' THEN 'probable'
        WHEN m.tier = 'asset_tag' AND m.serial IS NOT NULL AND m.reg_serial IS NOT NULL
             AND lookalike(m.serial) <> lookalike(m.reg_serial) THEN 'identity_conflict'
        WHEN m.tier = 'serial' AND m.asset_tag IS NOT NULL AND m.reg_tag IS NOT NULL
             AND m.asset_tag <> m.reg_tag THEN 'identity_conflict'
        ELSE 'confirmed'
    END AS match_status,
    m.session_id, m.asset_tag AS observed_asset_tag, m.serial AS observed_serial, m.epc,
    m.location AS found_location, m.custodian AS found_custodian,
    m.custodian_key AS found_custodian_key, m.condition AS found_condition,
    m.condition_key AS found_condition_key, m.last_seen, m.methods, m.observation_count
FROM m
"""


def stages(ctx: RunContext) -> list[Stage]:
    """Observations normalized, grouped per counted item, then matched in tiers."""
    epc_join = (
        "LEFT JOIN (SELECT epc, min(asset_tag) AS epc_map_tag FROM epc_map GROUP BY epc) m "
        "ON m.epc = c3.epc1"
        if ctx.settings.epc_scheme == "mapping"
        else ""
    )
    observations = (
        OBSERVATIONS.replace("EPC_TAG", epc_tag_sql(ctx))
        .replace("EPC_JOIN", epc_join)
        .replace("CUSTODIAN_DICTIONARY", custodian_dictionary("custodian", "count_rows"))
    )
    return [
        Stage(
            "observations_all",
            "match",
            observations,
            "count rows normalized; EPCs decoded to asset tags by the configured scheme",
        ),
        Stage(
            "observed_items",
            "match",
            OBSERVED_ITEMS,
            "one row per counted item (an asset seen several times is counted once)",
            False,
        ),
        Stage(
            "matches",
            "match",
            MATCHES,
            "counted item → register asset (none: unrecorded), with the tier that matched "
            "and a verdict",
        ),
    ]
