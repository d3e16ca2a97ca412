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

from datetime import timedelta

from tagsweep.domain import VarianceType
from tagsweep.engine.stages import RunContext, Stage, lit

CONFLICT_FIELDS = ("serial", "manufacturer", "model", "location", "status")


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
    cols = (
        "variance_type, asset_key, detail_key, asset_tag, serial, epc, manufacturer, model, "
        "expected, found, expected_location, found_location, source, session_id, value, "
        "category, detail, evidence"
    )
    candidates = f"""
WITH ret AS (
    SELECT asset_key,
        string_agg(DISTINCT coalesce(status_label, status), ', '
                   ORDER BY coalesce(status_label, status)) AS labels,
        string_agg(DISTINCT source, ',' ORDER BY source) AS sources
    FROM record_links WHERE asset_key IS NOT NULL AND status IN {retired} GROUP BY asset_key
), mdm_active AS (
    SELECT asset_key, max(last_seen) AS last_seen,
        arg_max(source, (last_seen, source)) AS source
    FROM record_links
    WHERE asset_key IS NOT NULL AND role = 'mdm'
      AND last_seen >= TIMESTAMPTZ '{active_since} 00:00:00+00'
    GROUP BY asset_key
), regrec AS (
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
        l.model_key IS NOT NULL AND r.model_key IS NOT NULL AND l.model_key <> r.model_key
            AND l.source <> r.model_source AS c_model,
        l.location IS NOT NULL AND r.location IS NOT NULL
            AND NOT loc_within(l.location, r.location)
            AND l.source <> r.location_source AS c_location,
        l.status IS NOT NULL AND r.status IS NOT NULL AND l.status <> r.status
            AND l.source <> r.status_source AS c_status,
        l.serial, l.manufacturer, l.model, l.location, coalesce(l.status_label, l.status)
            AS status
    FROM record_links l JOIN register r ON r.asset_key = l.asset_key
    WHERE contains(r.sources, ',')
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
), mdm_user AS (
    SELECT asset_key, arg_min(custodian, (source, line)) AS custodian,
        arg_min(custodian_key, (source, line)) AS custodian_key,
        arg_min(source, (source, line)) AS source
    FROM record_links
    WHERE asset_key IS NOT NULL AND role = 'mdm' AND custodian_key IS NOT NULL
    GROUP BY asset_key
), unlinked AS (
    SELECT *, coalesce(asset_tag, 'SN:' || coalesce(manufacturer_key, '') || '|' || serial,
                       'HW:' || coalesce(hardware_uuid, mac)) AS key
    FROM record_links WHERE asset_key IS NULL
)
SELECT 'retired_but_active', r.asset_key, '', r.asset_tag, r.serial, f.epc, r.manufacturer,
    r.model, 'Status: ' || ret.labels,
    CASE WHEN f.asset_key IS NOT NULL THEN 'Found: ' || f.found_location
         ELSE 'Active in ' || ma.source || ': last seen ' || strftime(ma.last_seen, '%Y-%m-%d')
    END,
    r.location, f.found_location, ret.sources, f.session_id, r.value, r.category,
    'Marked ' || ret.labels || ' in ' || ret.sources || ' but '
        || CASE WHEN f.asset_key IS NOT NULL THEN 'found in the count'
                ELSE 'active in discovery' END
        || ': check disposal records and the device before changing either side.',
    to_json({{'retired_in': ret.sources, 'retired_status': ret.labels,
              'found_session': f.session_id, 'found_location': f.found_location,
              'discovery_source': ma.source,
              'discovery_last_seen': strftime(ma.last_seen, '%Y-%m-%dT%H:%M:%SZ')}})
FROM register r JOIN ret ON ret.asset_key = r.asset_key
LEFT JOIN found_assets f ON f.asset_key = r.asset_key
LEFT JOIN mdm_active ma ON ma.asset_key = r.asset_key
WHERE f.asset_key IS NOT NULL OR ma.asset_key IS NOT NULL

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
SELECT 'missing', r.asset_key, '', r.asset_tag, r.serial, NULL, r.manufacturer, r.model,
    concat_ws(' / ', 'Status: ' || r.status_label, 'Loc: ' || r.location), 'Not Found',
    r.location, NULL, r.location_source, NULL, r.value, r.category,
    'In the register as ' || coalesce(r.status, 'unknown') || ' at '
        || coalesce(r.location, 'no location')
        || ' but not found in the count: check tickets, loans, repairs and offboarding.',
    to_json({{'status': r.status, 'status_label': r.status_label,
              'status_source': r.status_source, 'location_source': r.location_source,
              'last_seen': strftime(r.last_seen, '%Y-%m-%dT%H:%M:%SZ'),
              'last_seen_source': r.last_seen_source}})
FROM register r JOIN register_scoped rs ON rs.asset_key = r.asset_key
WHERE rs.expected_here AND NOT rs.matched

UNION ALL
SELECT 'unrecorded', o.obs_key, '', o.asset_tag, o.serial, o.epc, NULL, NULL,
    'No Record Found',
    concat_ws(' / ', coalesce('Serial: ' || o.serial, 'Tag: ' || o.asset_tag, 'EPC: ' || o.epc),
              'Loc: ' || o.location),
    NULL, o.location, NULL, o.session_id, NULL, NULL,
    'Found in the count at ' || o.location
        || ' but no register record matches: register it and label it.',
    to_json({{'sessions': o.session_id, 'methods': o.methods,
              'observations': o.observation_count, 'custodian': o.custodian,
              'condition': o.condition}})
FROM observed_items o ANTI JOIN matches m ON m.obs_key = o.obs_key

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
SELECT 'custodian_mismatch', r.asset_key, '', r.asset_tag, r.serial, f.epc, r.manufacturer,
    r.model,
    concat_ws(' / ', 'Serial: ' || r.serial, 'User: ' || r.custodian),
    CASE
        WHEN f.found_custodian_key IS NOT NULL AND f.found_custodian_key <> r.custodian_key
        THEN concat_ws(' / ', 'Serial: ' || f.observed_serial, 'User: ' || f.found_custodian)
        WHEN mu.custodian_key IS NOT NULL AND mu.custodian_key <> r.custodian_key
        THEN 'User: ' || mu.custodian || ' (' || mu.source || ')'
        ELSE 'User: ' || r.custodian || ' has left (HR)'
    END,
    r.location, f.found_location, r.custodian_source, f.session_id, r.value, r.category,
    CASE
        WHEN f.found_custodian_key IS NOT NULL AND f.found_custodian_key <> r.custodian_key
        THEN 'The count found the device with ' || f.found_custodian || ', the register '
             || 'assigns it to ' || r.custodian || ': confirm the handoff with both.'
        WHEN mu.custodian_key IS NOT NULL AND mu.custodian_key <> r.custodian_key
        THEN mu.source || ' says ' || mu.custodian || ' uses the device, the register '
             || 'assigns it to ' || r.custodian || ': confirm who holds it.'
        ELSE 'Assigned to ' || r.custodian || ', who has left: recover the device '
             || 'or reassign it.'
    END,
    to_json({{'register_custodian': r.custodian, 'custodian_source': r.custodian_source,
              'found_custodian': f.found_custodian, 'found_session': f.session_id,
              'discovery_custodian': mu.custodian, 'discovery_source': mu.source,
              'leaver': r.custodian_leaver}})
FROM register r
LEFT JOIN found_assets f ON f.asset_key = r.asset_key
LEFT JOIN mdm_user mu ON mu.asset_key = r.asset_key AND r.custodian_source <> mu.source
WHERE r.custodian_key IS NOT NULL AND (
    (f.found_custodian_key IS NOT NULL AND f.found_custodian_key <> r.custodian_key)
    OR (mu.custodian_key IS NOT NULL AND mu.custodian_key <> r.custodian_key)
    OR r.custodian_leaver)

UNION ALL
SELECT 'location_mismatch', r.asset_key, '', r.asset_tag, r.serial, f.epc, r.manufacturer,
    r.model,
    concat_ws(' / ', 'Serial: ' || r.serial, 'Loc: ' || r.location),
    concat_ws(' / ', 'Serial: ' || f.observed_serial, 'Loc: ' || f.found_location),
    r.location, f.found_location, r.location_source, f.session_id, r.value, r.category,
    'Recorded at ' || r.location || ', found at ' || f.found_location
        || ': update the record or return the device.',
    to_json({{'location_source': r.location_source, 'found_session': f.session_id,
              'found_methods': f.methods}})
FROM register r JOIN found_assets f ON f.asset_key = r.asset_key
WHERE r.location IS NOT NULL AND f.found_location IS NOT NULL
  AND NOT loc_within(r.location, f.found_location)

UNION ALL
SELECT 'status_condition_mismatch', r.asset_key, '', r.asset_tag, r.serial, f.epc,
    r.manufacturer, r.model,
    CASE WHEN f.found_condition_key IS NOT NULL AND r.condition_key IS NOT NULL
              AND f.found_condition_key <> r.condition_key
         THEN 'Status: ' || r.condition ELSE 'Status: ' || r.status_label END,
    CASE WHEN f.found_condition_key IS NOT NULL AND r.condition_key IS NOT NULL
              AND f.found_condition_key <> r.condition_key
         THEN 'Status: ' || f.found_condition ELSE 'Status: Found at ' || f.found_location END,
    r.location, f.found_location,
    CASE WHEN f.found_condition_key IS NOT NULL AND r.condition_key IS NOT NULL
              AND f.found_condition_key <> r.condition_key
         THEN r.condition_source ELSE r.status_source END,
    f.session_id, r.value, r.category,
    CASE WHEN f.found_condition_key IS NOT NULL AND r.condition_key IS NOT NULL
              AND f.found_condition_key <> r.condition_key
         THEN 'Recorded as ' || r.condition || ', found ' || f.found_condition
              || ': update the condition and open a repair if needed.'
         ELSE 'Recorded as ' || r.status_label || ' (' || r.status || ') but found at '
              || f.found_location || ': correct the status.' END,
    to_json({{'register_condition': r.condition, 'found_condition': f.found_condition,
              'register_status': r.status, 'status_label': r.status_label,
              'found_session': f.session_id}})
FROM register r JOIN found_assets f ON f.asset_key = r.asset_key
WHERE (f.found_condition_key IS NOT NULL AND r.condition_key IS NOT NULL
       AND f.found_condition_key <> r.condition_key)
   OR r.status IN {found_bad}

UNION ALL
SELECT 'source_conflict', r.asset_key, g.field, r.asset_tag, r.serial, NULL, r.manufacturer,
    r.model,
    g.field || ': ' || CASE g.field
        WHEN 'serial' THEN r.serial || ' (' || r.serial_source || ')'
        WHEN 'manufacturer' THEN r.manufacturer || ' (' || r.manufacturer_source || ')'
        WHEN 'model' THEN r.model || ' (' || r.model_source || ')'
        WHEN 'location' THEN r.location || ' (' || r.location_source || ')'
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
              'custodian': u.custodian}})
FROM unlinked u

UNION ALL
SELECT 'stale_record', r.asset_key, '', r.asset_tag, r.serial, NULL, r.manufacturer, r.model,
    'Last seen within {s.stale_after_days} days',
    coalesce('Last seen ' || strftime(r.last_seen, '%Y-%m-%d') || ' (' || r.last_seen_source
             || ')', 'No last-seen in any source'),
    r.location, NULL, r.sources, NULL, r.value, r.category,
    'No source has seen this asset recently and this count did not cover it: '
        || 'verify it exists before trusting the record.',
    to_json({{'last_seen': strftime(r.last_seen, '%Y-%m-%dT%H:%M:%SZ'),
              'last_seen_source': r.last_seen_source, 'sources': r.sources,
              'status': r.status}})
FROM register r JOIN register_scoped rs ON rs.asset_key = r.asset_key
WHERE NOT rs.expected_here AND coalesce(r.status, '') NOT IN {not_stale}
  AND NOT rs.matched
  AND (r.last_seen IS NULL OR r.last_seen < TIMESTAMPTZ '{stale_before} 00:00:00+00')
"""
    type_order = " ".join(f"WHEN {lit(t.value)} THEN {i}" for i, t in enumerate(VarianceType))
    prio = " ".join(f"WHEN {lit(t)} THEN {lit(p)}" for t, p in s.priorities.items())
    risk_words = "|".join(
        c.strip().lower().replace("\\", "") for c in s.high_risk_categories if c.strip()
    )
    risk = (
        f"coalesce(regexp_matches(lower(category), '\\b({risk_words})s?\\b'), false)"
        if risk_words
        else "false"
    )
    return [
        Stage(
            "register_scoped",
            "classify",
            f"""
SELECT r.asset_key, (r.status IN {expected} AND {in_scope}) AS expected_here,
    m.asset_key IS NOT NULL AS matched
FROM register r
LEFT JOIN (SELECT DISTINCT asset_key FROM matches) m ON m.asset_key = r.asset_key
""",
            "register assets with whether this count should have found them",
        ),
        Stage(
            "found_assets",
            "classify",
            """
WITH c AS (
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
        ),
        Stage(
            "variance_candidates",
            "classify",
            f"SELECT * FROM ({candidates}) AS v({cols})",
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
