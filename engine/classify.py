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
from datetime import timedelta

from tagsweep.domain import VarianceType
from tagsweep.engine import normalize
from tagsweep.engine.stages import RunContext, Stage, lit

CONFLICT_FIELDS = ("serial", "manufacturer", "model", "location", "status", "value")

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


def _in(values: list[str] | tuple[str, ...]) -> str:
    return "(" + ", ".join(lit(v) for v in values) + ")" if values else "(NULL)"


def stages(ctx: RunContext) -> list[Stage]:
    s = ctx.settings
    as_of = ctx.as_of.isoformat()
    active_since = (ctx.as_of - timedelta(days=s.active_within_days)).isoformat()
    stale_before = (ctx.as_of - timedelta(days=s.stale_after_days)).isoformat()
    retired = _in(s.retired_statuses)
    expected = _in(s.expected_present_statuses)
    found_bad = _in(s.found_status_mismatch)
    not_stale = _in([*s.retired_statuses, "missing", "stolen"])
    prefixes = [p.strip().strip("/").lower() for p in ctx.scope if p.strip().strip("/")]
    in_scope = (
        "(r.location IS NOT NULL AND ("
        + " OR ".join(
            f"lower(r.location) = {lit(p)} OR starts_with(lower(r.location), {lit(p + '/')})"
            for p in prefixes
        )
        + "))"
        if prefixes
        else "true"
    )
    mdm_sources = [src.name for src in ctx.sources if src.role == "mdm"]
    has_mdm = bool(mdm_sources)
    # One MDM source that is not the register's primary: other_links keeps at most one
    # record of it per asset (a stale enrolment is superseded), so its records are
    # already one row per asset and need no million-group aggregate.
    one_per_asset = len(mdm_sources) == 1 and mdm_sources[0] != normalize.primary_source(ctx)
    no_mdm = "SELECT CAST(NULL AS VARCHAR) AS asset_key"
    mdm_rows = f"""
    FROM record_links
    WHERE asset_key IS NOT NULL AND role = 'mdm'
      AND last_seen >= TIMESTAMPTZ '{active_since} 00:00:00+00'"""
    if not has_mdm:
        mdm_active = (
            no_mdm + ", CAST(NULL AS TIMESTAMPTZ) AS last_seen, CAST(NULL AS VARCHAR) AS source "
            "WHERE false"
        )
    elif one_per_asset:
        mdm_active = "\n    SELECT asset_key, last_seen, source" + mdm_rows
    else:
        mdm_active = (
            "\n    SELECT asset_key, max(last_seen) AS last_seen,\n"
            "        arg_max(source, (last_seen, source)) AS source"
            + mdm_rows
            + "\n    GROUP BY asset_key"
        )
    mdm_user_rows = """
        FROM record_links
        WHERE asset_key IS NOT NULL AND role = 'mdm' AND custodian_key IS NOT NULL"""
    if not has_mdm:
        mdm_user = (
            no_mdm + ", CAST(NULL AS VARCHAR) AS custodian, "
            "CAST(NULL AS VARCHAR) AS custodian_key, CAST(NULL AS VARCHAR) AS custodian_alt, "
            "CAST(NULL AS VARCHAR) AS source WHERE false"
        )
    elif one_per_asset:
        mdm_user = (
            "\n    SELECT asset_key, custodian, custodian_key, custodian_alt, source"
            + mdm_user_rows
        )
    else:
        mdm_user = (
            """
    SELECT asset_key, first.custodian, first.custodian_key, first.custodian_alt, first.source
    FROM (
        -- one arg_min carrying the columns: each one compares the keys again
        SELECT asset_key,
            arg_min({'custodian': custodian, 'custodian_key': custodian_key,
                     'custodian_alt': custodian_alt, 'source': source}, (source, line))
                AS first"""
            + mdm_user_rows
            + """
        GROUP BY asset_key
    )"""
        )
    asset_sources = [src for src in ctx.sources if src.role != "hr"]
    # sources can only disagree when there are several; only records of a non-register
    # source can lack a register asset (the SQL skips what cannot happen)
    several_sources = "contains(r.sources, ',')" if len(asset_sources) > 1 else "false"
    # A source first in precedence for every compared field is the register's source of
    # each of those fields whenever its own value is set: its records cannot disagree
    # with the register (the conflict rule skips the field's own source), so they are
    # left out of the million-row join that looks for disagreements.
    pairs = [(src.name, str(src.role)) for src in asset_sources]
    never_differ = [
        name
        for name, _ in pairs
        if all(normalize.precedence(s, f, pairs)[0] == name for f in CONFLICT_FIELDS)
    ]
    if never_differ:
        several_sources += f" AND l.source NOT IN {_in(never_differ)}"
    unlinked_possible = (
        "asset_key IS NULL"
        if any(src.role not in s.register_roles for src in asset_sources)
        else "false"
    )
    # the register-centred variance types, over one row of ``joined`` below
    checks = {
        "is_retired": "ret_present AND (found OR ma_present)",
        "is_missing": "expected_here AND NOT matched" if ctx.counted else "false",
        "is_custodian": "custodian_key IS NOT NULL AND ("
        "(found_custodian_key IS NOT NULL AND found_custodian_key <> custodian_key) "
        "OR mu_differs "
        "OR custodian_leaver)",
        "is_location": "found AND location IS NOT NULL AND found_location IS NOT NULL "
        "AND NOT loc_within(location, found_location)",
        "is_status": "found AND ((found_condition_key IS NOT NULL AND condition_key IS NOT NULL "
        f"AND found_condition_key <> condition_key) OR status IN {found_bad})",
        "is_stale": f"NOT expected_here AND coalesce(status, '') NOT IN {not_stale} "
        "AND NOT matched AND (last_seen IS NULL "
        f"OR last_seen < TIMESTAMPTZ '{stale_before} 00:00:00+00')"
        if ctx.counted
        # without a count only what a source saw long ago is stale, not what none tracks
        else f"coalesce(status, '') NOT IN {not_stale} "
        f"AND last_seen < TIMESTAMPTZ '{stale_before} 00:00:00+00'",
        # reported missing or stolen, yet the MDM sees it checking in
        "is_lost_active": "NOT found AND ma_present AND lost_present",
    }
    any_check = " OR ".join(f"({c})" for c in checks.values())
    flags = ", ".join(f"coalesce({c}, false) AS {name}" for name, c in checks.items())
    expected_here = f"(r.status IN {expected} AND {in_scope})"
    asset_checks = f"""
WITH ret AS (
    SELECT asset_key,
        string_agg(DISTINCT coalesce(status_label, status), ', '
                   ORDER BY coalesce(status_label, status)) AS labels,
        string_agg(DISTINCT source, ',' ORDER BY source) AS sources
    FROM record_links WHERE asset_key IS NOT NULL AND status IN {retired} GROUP BY asset_key
), lost AS (
    -- a source says missing or stolen (not necessarily the register's source of truth)
    SELECT asset_key,
        string_agg(DISTINCT coalesce(status_label, status), ', '
                   ORDER BY coalesce(status_label, status)) AS labels,
        string_agg(DISTINCT status, ', ' ORDER BY status) AS statuses,
        string_agg(DISTINCT source, ',' ORDER BY source) AS sources
    FROM record_links WHERE asset_key IS NOT NULL AND status IN ('missing', 'stolen')
    GROUP BY asset_key
), mdm_active AS ({mdm_active}
), mdm_user AS ({mdm_user}
), unconfirmed AS (
    -- the few assets matched only for review (identity conflict, probable match)
    SELECT DISTINCT asset_key FROM matches WHERE match_status <> 'confirmed'
), joined AS (
    -- narrow: only what the checks read; the wide register row is joined back below
    -- for the few assets flagged
    SELECT r.asset_key, r.status, r.location, r.custodian_key, r.custodian_leaver,
        r.condition_key, r.last_seen, f.asset_key IS NOT NULL AS found, f.epc,
        f.found_location, f.session_id,
        f.observed_serial, f.found_custodian, f.found_custodian_key, f.found_condition,
        f.found_condition_key, f.methods,
        {expected_here} AS expected_here,
        f.asset_key IS NOT NULL OR u.asset_key IS NOT NULL AS matched,
        ret.asset_key IS NOT NULL AS ret_present,
        ret.labels AS ret_labels, ret.sources AS ret_sources,
        lost.asset_key IS NOT NULL AS lost_present, lost.labels AS lost_labels,
        lost.statuses AS lost_statuses, lost.sources AS lost_sources,
        ma.asset_key IS NOT NULL AS ma_present, ma.source AS ma_source,
        ma.last_seen AS ma_last_seen,
        mu.custodian AS mu_custodian, mu.custodian_key AS mu_custodian_key,
        -- the MDM's user is another person: no key of one is a key of the other
        coalesce(mu.custodian_key IS NOT NULL AND r.custodian_key IS NOT NULL AND NOT (
            mu.custodian_key = r.custodian_key
            OR mu.custodian_key IS NOT DISTINCT FROM r.custodian_alt
            OR mu.custodian_alt IS NOT DISTINCT FROM r.custodian_key
            OR mu.custodian_alt = r.custodian_alt), false) AS mu_differs,
        mu.source AS mu_source
    FROM (
        SELECT asset_key, status, location, custodian_key, custodian_alt, custodian_leaver,
            condition_key, last_seen, custodian_source
        FROM register
    ) r
    LEFT JOIN found_assets f ON f.asset_key = r.asset_key
    LEFT JOIN unconfirmed u ON u.asset_key = r.asset_key
    LEFT JOIN ret ON ret.asset_key = r.asset_key
    LEFT JOIN lost ON lost.asset_key = r.asset_key
    LEFT JOIN mdm_active ma ON ma.asset_key = r.asset_key
    LEFT JOIN mdm_user mu ON mu.asset_key = r.asset_key AND r.custodian_source <> mu.source
), flagged AS (
    -- the conditions filter a million rows; the flags are computed for the few left
    SELECT *, {flags} FROM joined WHERE {any_check}
)
SELECT r.*, f.* EXCLUDE (asset_key, status, location, custodian_key, custodian_leaver,
                         condition_key, last_seen)
FROM flagged f JOIN register r ON r.asset_key = f.asset_key
"""
    candidates = f"""
WITH regrec AS NOT MATERIALIZED (
    -- narrow: the duplicate checks read it four times
    SELECT source, asset_key, asset_tag, serial, manufacturer_key, status, line,
        CASE WHEN serial IS NOT NULL AND coalesce(status, '') NOT IN {retired}
             THEN hash(source, coalesce(manufacturer_key, ''), serial) END AS serial_hash,
    FROM record_links WHERE link_tier = 'register'
), dup_serial_keys AS (
    -- repeated hashes first (an integer group), then the exact keys among those few
    SELECT source, coalesce(manufacturer_key, '') AS mk, serial FROM regrec
    SEMI JOIN (SELECT serial_hash FROM regrec WHERE serial_hash IS NOT NULL
               GROUP BY serial_hash HAVING count(*) > 1) h ON h.serial_hash = regrec.serial_hash
    GROUP BY ALL HAVING count(*) > 1
), dup_tag_keys AS (
    -- a tag held twice by one source is an asset key held twice: register_duplicates
    -- already lists those few, so only their records are counted again
    SELECT source, asset_tag FROM regrec
    SEMI JOIN (SELECT DISTINCT source, asset_key FROM register_duplicates) d
        ON d.source = regrec.source AND d.asset_key = regrec.asset_tag
    WHERE asset_tag IS NOT NULL
    GROUP BY ALL HAVING count(*) > 1
), dup AS (
    SELECT r.source, 'serial:' || k.mk || '|' || r.serial AS dkey,
        min(r.asset_key) AS first_key,
        string_agg(DISTINCT r.asset_key, ', ' ORDER BY r.asset_key) AS keys,
        count(DISTINCT r.asset_key) AS n,
        string_agg(CAST(r.line AS VARCHAR), ', ' ORDER BY r.line) AS lines,
        min(r.serial) AS serial
    FROM regrec r JOIN dup_serial_keys k ON k.source = r.source AND k.serial = r.serial
        AND k.mk = coalesce(r.manufacturer_key, '')
    WHERE coalesce(r.status, '') NOT IN {retired}
    GROUP BY r.source, k.mk, r.serial HAVING count(DISTINCT r.asset_key) > 1
    UNION ALL
    SELECT r.source, 'tag:' || r.asset_tag, r.asset_tag, r.asset_tag, count(*),
        string_agg(CAST(r.line AS VARCHAR), ', ' ORDER BY r.line), NULL
    FROM regrec r JOIN dup_tag_keys k ON k.source = r.source AND k.asset_tag = r.asset_tag
    GROUP BY r.source, r.asset_tag
), conflicts AS (
    SELECT r.asset_key, l.source,
        l.serial IS NOT NULL AND r.serial IS NOT NULL AND l.serial <> r.serial
            AND l.source <> r.serial_source AS c_serial,
        l.manufacturer_key IS NOT NULL AND r.manufacturer_key IS NOT NULL
            AND l.manufacturer_key <> r.manufacturer_key
            AND l.source <> r.manufacturer_source AS c_manufacturer,
        l.model_key IS NOT NULL AND r.model_key IS NOT NULL
            AND NOT model_within(l.model_key, r.model_key)
            AND l.source <> r.model_source AS c_model,
        l.location IS NOT NULL AND r.location IS NOT NULL
            AND NOT loc_within(l.location, r.location)
            AND l.source <> r.location_source AS c_location,
        l.status IS NOT NULL AND r.status IS NOT NULL AND l.status <> r.status
            AND l.source <> r.status_source AS c_status,
        -- costs (not book values) of one device differ by more than 1 % (or 1 unit)
        l.value IS NOT NULL AND r.value IS NOT NULL AND l.value_is_cost AND r.value_is_cost
            AND abs(l.value - r.value) > greatest(1.0, 0.01 * abs(r.value))
            AND l.source <> r.value_source AS c_value,
        l.serial, l.manufacturer, l.model, l.location, coalesce(l.status_label, l.status)
            AS status, l.value
    FROM record_links l JOIN register r ON r.asset_key = l.asset_key
    WHERE {several_sources}
), conflict_rows AS (
    {
        " UNION ALL ".join(
            f"SELECT asset_key, '{f}' AS field, source, CAST({f} AS VARCHAR) AS value "
            f"FROM conflicts WHERE c_{f}"
            for f in CONFLICT_FIELDS
        )
    }
), conflict_groups AS (
    SELECT asset_key, field,
        string_agg(source || ': ' || value, '; ' ORDER BY source, value) AS found,
        string_agg(DISTINCT source, ',' ORDER BY source) AS sources
    FROM conflict_rows GROUP BY asset_key, field
), unlinked AS (
    SELECT *, coalesce(asset_tag, 'SN:' || coalesce(manufacturer_key, '') || '|' || serial,
                       'HW:' || coalesce(hardware_uuid, mac), 'ID:' || source || '|' || record_id)
        AS key
    FROM record_links WHERE {unlinked_possible} AND probable_key IS NULL
), near AS (
    SELECT * FROM record_links WHERE {unlinked_possible} AND probable_key IS NOT NULL
)
SELECT 'retired_but_active', a.asset_key, '', a.asset_tag, a.serial, a.epc, a.manufacturer,
    a.model, 'Status: ' || a.ret_labels,
    CASE WHEN a.found THEN 'Found: ' || a.found_location
         ELSE 'Active in ' || a.ma_source || ': last seen ' || strftime(a.ma_last_seen, '%Y-%m-%d')
    END,
    a.location, a.found_location, a.ret_sources, a.session_id, a.value, a.category,
    'Marked ' || a.ret_labels || ' in ' || a.ret_sources || ' but '
        || CASE WHEN a.found THEN 'found in the count'
                ELSE 'active in discovery' END
        || ': check disposal records and the device before changing either side.',
    to_json({{'retired_in': a.ret_sources, 'retired_status': a.ret_labels,
              'found_session': a.session_id, 'found_location': a.found_location,
              'discovery_source': a.ma_source,
              'discovery_last_seen': strftime(a.ma_last_seen, '%Y-%m-%dT%H:%M:%SZ')}})
FROM asset_checks a WHERE a.is_retired

UNION ALL
SELECT 'duplicate_record', d.first_key, d.source || '|' || d.dkey, r.asset_tag,
    coalesce(d.serial, r.serial), NULL, r.manufacturer, r.model,
    'One active record per device', 'Records: ' || d.keys || ' (' || d.source || ')',
    r.location, NULL, d.source, NULL, r.value, r.category,
    CAST(d.n AS VARCHAR) || ' active records in ' || d.source || ' refer to one device ('
        || replace(d.dkey, '|', ' ') || '): keep one, retire the others with a note.',
    to_json({{'source': d.source, 'records': d.keys, 'lines': d.lines, 'key': d.dkey}})
FROM dup d JOIN register r ON r.asset_key = d.first_key

UNION ALL
SELECT 'missing', a.asset_key, '', a.asset_tag, a.serial, NULL, a.manufacturer, a.model,
    concat_ws(' / ', 'Status: ' || a.status_label, 'Loc: ' || a.location), 'Not Found',
    a.location, NULL, a.location_source, NULL, a.value, a.category,
    'In the register as ' || coalesce(a.status, 'unknown') || ' at '
        || coalesce(a.location, 'no location')
        || ' but not found in the count: check tickets, loans, repairs and offboarding.',
    to_json({{'status': a.status, 'status_label': a.status_label,
              'status_source': a.status_source, 'location_source': a.location_source,
              'last_seen': strftime(a.last_seen, '%Y-%m-%dT%H:%M:%SZ'),
              'last_seen_source': a.last_seen_source}})
FROM asset_checks a WHERE a.is_missing

UNION ALL
SELECT 'unrecorded', m.obs_key, '', m.observed_asset_tag, m.observed_serial, m.epc, NULL,
    NULL, 'No Record Found',
    concat_ws(' / ', coalesce('Serial: ' || m.observed_serial,
                              'Tag: ' || m.observed_asset_tag, 'EPC: ' || m.epc),
              'Loc: ' || m.found_location),
    NULL, m.found_location, NULL, m.session_id, NULL, NULL,
    'Found in the count at ' || m.found_location
        || ' but no register record matches: register it and label it.',
    to_json({{'sessions': m.session_id, 'methods': m.methods,
              'observations': m.observation_count, 'custodian': m.found_custodian,
              'condition': m.found_condition}})
FROM matches m WHERE m.asset_key IS NULL

UNION ALL
SELECT 'identity_conflict', r.asset_key, m.obs_key, r.asset_tag, r.serial, m.epc,
    r.manufacturer, r.model,
    concat_ws(' / ', 'Tag: ' || r.asset_tag, 'Serial: ' || r.serial),
    concat_ws(' / ', 'Tag: ' || m.observed_asset_tag, 'Serial: ' || m.observed_serial),
    r.location, m.found_location, r.serial_source, m.session_id, r.value, r.category,
    'Matched by ' || replace(m.tier, '_', ' ')
        || ' but the other identifier differs: verify the serial plate and the tag; '
        || 'do not merge.',
    to_json({{'tier': m.tier, 'register_asset_tag': r.asset_tag, 'register_serial': r.serial,
              'observed_asset_tag': m.observed_asset_tag, 'observed_serial': m.observed_serial,
              'sessions': m.session_id}})
FROM matches m JOIN register r ON r.asset_key = m.asset_key
WHERE m.match_status = 'identity_conflict'

UNION ALL
SELECT 'probable_match', r.asset_key, m.obs_key, r.asset_tag, r.serial, m.epc,
    r.manufacturer, r.model,
    concat_ws(' / ', 'Serial: ' || r.serial, 'Loc: ' || r.location),
    concat_ws(' / ', 'Serial: ' || m.observed_serial, 'Loc: ' || m.found_location),
    r.location, m.found_location, r.serial_source, m.session_id, r.value, r.category,
    'Serial ' || m.observed_serial || ' matches ' || r.serial
        || ' only with look-alike characters (O/0, I/1, S/5, B/8, Z/2): photograph the '
        || 'serial plate and confirm.',
    to_json({{'register_serial': r.serial, 'observed_serial': m.observed_serial,
              'observed_asset_tag': m.observed_asset_tag, 'sessions': m.session_id}})
FROM matches m JOIN register r ON r.asset_key = m.asset_key
WHERE m.match_status = 'probable'

UNION ALL
SELECT 'probable_match', r.asset_key,
    'source:' || n.source || '|' || coalesce(n.serial, n.asset_tag, CAST(n.line AS VARCHAR)),
    r.asset_tag, r.serial, NULL, r.manufacturer, r.model,
    concat_ws(' / ', 'Tag: ' || r.asset_tag, 'Serial: ' || r.serial),
    concat_ws(' / ', 'Tag: ' || n.asset_tag, 'Serial: ' || n.serial) || ' (' || n.source || ')',
    r.location, NULL, n.source, NULL, r.value, r.category,
    n.source || ' line ' || CAST(n.line AS VARCHAR) || ' carries a ' || n.probable_reason
        || ' of this asset: confirm it on the device and correct ' || n.source
        || ' (never merged automatically).',
    to_json({{'source': n.source, 'line': n.line, 'reason': n.probable_reason,
              'source_asset_tag': n.asset_tag, 'source_serial': n.serial,
              'register_asset_tag': r.asset_tag, 'register_serial': r.serial,
              'register_source': coalesce(r.serial_source, r.asset_tag_source)}})
FROM near n JOIN register r ON r.asset_key = n.probable_key

UNION ALL
SELECT 'status_condition_mismatch', a.asset_key, 'discovery', a.asset_tag, a.serial, NULL,
    a.manufacturer, a.model, 'Status: ' || a.lost_labels || ' (' || a.lost_sources || ')',
    'Active in ' || a.ma_source || ': last seen ' || strftime(a.ma_last_seen, '%Y-%m-%d'),
    a.location, NULL, a.lost_sources, NULL, a.value, a.category,
    'Recorded as ' || a.lost_labels || ' (' || a.lost_statuses || ') in ' || a.lost_sources
        || ' but ' || a.ma_source || ' saw it check in on '
        || strftime(a.ma_last_seen, '%Y-%m-%d') || ': find the device and correct the record.',
    to_json({{'recorded_status': a.lost_statuses, 'status_label': a.lost_labels,
              'status_sources': a.lost_sources, 'discovery_source': a.ma_source,
              'discovery_last_seen': strftime(a.ma_last_seen, '%Y-%m-%dT%H:%M:%SZ')}})
FROM asset_checks a WHERE a.is_lost_active

UNION ALL
SELECT 'custodian_mismatch', a.asset_key, '', a.asset_tag, a.serial, a.epc, a.manufacturer,
    a.model,
    concat_ws(' / ', 'Serial: ' || a.serial, 'User: ' || a.custodian),
    CASE
        WHEN a.found_custodian_key IS NOT NULL AND a.found_custodian_key <> a.custodian_key
        THEN concat_ws(' / ', 'Serial: ' || a.observed_serial, 'User: ' || a.found_custodian)
        WHEN a.mu_differs
        THEN 'User: ' || a.mu_custodian || ' (' || a.mu_source || ')'
        ELSE 'User: ' || a.custodian || ' has left (HR)'
    END,
    a.location, a.found_location, a.custodian_source, a.session_id, a.value, a.category,
    CASE
        WHEN a.found_custodian_key IS NOT NULL AND a.found_custodian_key <> a.custodian_key
        THEN 'The count found the device with ' || a.found_custodian || ', the register '
             || 'assigns it to ' || a.custodian || ': confirm the handoff with both.'
        WHEN a.mu_differs
        THEN a.mu_source || ' says ' || a.mu_custodian || ' uses the device, the register '
             || 'assigns it to ' || a.custodian || ': confirm who holds it.'
        ELSE 'Assigned to ' || a.custodian || ', who has left: recover the device '
             || 'or reassign it.'
    END,
    to_json({{'register_custodian': a.custodian, 'custodian_source': a.custodian_source,
              'found_custodian': a.found_custodian, 'found_session': a.session_id,
              'discovery_custodian': a.mu_custodian, 'discovery_source': a.mu_source,
              'leaver': a.custodian_leaver}})
FROM asset_checks a WHERE a.is_custodian

UNION ALL
SELECT 'location_mismatch', a.asset_key, '', a.asset_tag, a.serial, a.epc, a.manufacturer,
    a.model,
    concat_ws(' / ', 'Serial: ' || a.serial, 'Loc: ' || a.location),
    concat_ws(' / ', 'Serial: ' || a.observed_serial, 'Loc: ' || a.found_location),
    a.location, a.found_location, a.location_source, a.session_id, a.value, a.category,
    'Recorded at ' || a.location || ', found at ' || a.found_location
        || ': update the record or return the device.',
    to_json({{'location_source': a.location_source, 'found_session': a.session_id,
              'found_methods': a.methods}})
FROM asset_checks a WHERE a.is_location

UNION ALL
SELECT 'status_condition_mismatch', a.asset_key, '', a.asset_tag, a.serial, a.epc,
    a.manufacturer, a.model,
    CASE WHEN a.found_condition_key IS NOT NULL AND a.condition_key IS NOT NULL
              AND a.found_condition_key <> a.condition_key
         THEN 'Status: ' || a.condition ELSE 'Status: ' || a.status_label END,
    CASE WHEN a.found_condition_key IS NOT NULL AND a.condition_key IS NOT NULL
              AND a.found_condition_key <> a.condition_key
         THEN 'Status: ' || a.found_condition ELSE 'Status: Found at ' || a.found_location END,
    a.location, a.found_location,
    CASE WHEN a.found_condition_key IS NOT NULL AND a.condition_key IS NOT NULL
              AND a.found_condition_key <> a.condition_key
         THEN a.condition_source ELSE a.status_source END,
    a.session_id, a.value, a.category,
    CASE WHEN a.found_condition_key IS NOT NULL AND a.condition_key IS NOT NULL
              AND a.found_condition_key <> a.condition_key
         THEN 'Recorded as ' || a.condition || ', found ' || a.found_condition
              || ': update the condition and open a repair if needed.'
         ELSE 'Recorded as ' || a.status_label || ' (' || a.status || ') but found at '
              || a.found_location || ': correct the status.' END,
    to_json({{'register_condition': a.condition, 'found_condition': a.found_condition,
              'register_status': a.status, 'status_label': a.status_label,
              'found_session': a.session_id}})
FROM asset_checks a WHERE a.is_status

UNION ALL
SELECT 'source_conflict', r.asset_key, g.field, r.asset_tag, r.serial, NULL, r.manufacturer,
    r.model,
    g.field || ': ' || CASE g.field
        WHEN 'serial' THEN r.serial || ' (' || r.serial_source || ')'
        WHEN 'manufacturer' THEN r.manufacturer || ' (' || r.manufacturer_source || ')'
        WHEN 'model' THEN r.model || ' (' || r.model_source || ')'
        WHEN 'location' THEN r.location || ' (' || r.location_source || ')'
        WHEN 'value' THEN CAST(r.value AS VARCHAR) || ' (' || r.value_source || ')'
        ELSE r.status_label || ' (' || r.status_source || ')' END,
    g.field || ': ' || g.found,
    r.location, NULL, g.sources, NULL, r.value, r.category,
    'Sources disagree on ' || g.field || ': the register takes the value of its source of '
        || 'truth; correct the other source(s).',
    to_json({{'field': g.field, 'others': g.found}})
FROM conflict_groups g JOIN register r ON r.asset_key = g.asset_key

UNION ALL
SELECT 'source_conflict', u.key, 'presence:' || u.source, u.asset_tag, u.serial, NULL,
    u.manufacturer, u.model, 'No register record',
    concat_ws(' / ', 'In ' || u.source, 'Serial: ' || u.serial, 'Tag: ' || u.asset_tag),
    NULL, NULL, u.source, NULL, u.value, u.category,
    u.source || ' holds a device the register does not: register it or remove it from '
        || u.source || '.',
    to_json({{'source': u.source, 'line': u.line, 'hostname': u.hostname,
              'custodian': u.custodian, 'record_id': u.record_id}})
FROM unlinked u

UNION ALL
SELECT 'stale_record', a.asset_key, '', a.asset_tag, a.serial, NULL, a.manufacturer, a.model,
    'Last seen within {s.stale_after_days} days',
    coalesce('Last seen ' || strftime(a.last_seen, '%Y-%m-%d') || ' (' || a.last_seen_source
             || ')', 'No last-seen in any source'),
    a.location, NULL, a.sources, NULL, a.value, a.category,
    'No source has seen this asset recently and this count did not cover it: '
        || 'verify it exists before trusting the record.',
    to_json({{'last_seen': strftime(a.last_seen, '%Y-%m-%dT%H:%M:%SZ'),
              'last_seen_source': a.last_seen_source, 'sources': a.sources,
              'status': a.status}})
FROM asset_checks a WHERE a.is_stale
"""
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
SELECT r.asset_key, {expected_here} AS expected_here,
    m.asset_key IS NOT NULL AS matched
FROM register r
LEFT JOIN (SELECT DISTINCT asset_key FROM matches WHERE asset_key IS NOT NULL) m
    ON m.asset_key = r.asset_key
""",
            "register assets with whether this count should have found them",
            False,  # the report counts it once; asset_checks computes the same inline
        ),
        Stage(
            "found_assets",
            "classify",
            """
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
""",
            "register assets the count confirmed, with what it found",
            False,  # read once, by asset_checks
        ),
        Stage(
            "asset_checks",
            "classify",
            asset_checks,
            "register assets with a variance of their own: one pass over the register "
            "with what the count and discovery found, and a flag per variance type",
        ),
        Stage(
            "variance_candidates",
            "classify",
            f"SELECT * FROM ({candidates}) AS v({', '.join(CANDIDATE_COLUMNS)})",
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
