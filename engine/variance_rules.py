"""Classify's variance rules: one SELECT per variance type, in the method's words.

Each branch produces the variance's expected and found texts, its detail (what to do)
and its evidence (JSON a reviewer reads): register-centred types from the flags of
``asset_checks``, the count-centred ones (unrecorded, identity conflict, probable match)
from the matches, duplicates from the register's own records, and disagreements between
sources from every record linked to an asset.
"""

from __future__ import annotations

from tagsweep.engine import linking
from tagsweep.engine.asset_checks import in_list
from tagsweep.engine.stages import RunContext

CONFLICT_FIELDS = ("serial", "manufacturer", "model", "location", "status", "value")


def candidates_sql(ctx: RunContext) -> str:
    """The ``variance_candidates`` stage: every variance, before ids, priority and SLA."""
    s = ctx.settings
    retired = in_list(s.retired_statuses)
    asset_sources = [src for src in ctx.sources if src.role != "hr"]
    # sources can only disagree when there are several; only records of a non-register
    # source can lack a register asset (the SQL skips what cannot happen)
    several_sources = "contains(r.sources, ',')" if len(asset_sources) > 1 else "false"
    # A source first in precedence for every compared field is the register's source of
    # each of those fields whenever its own value is set: its records cannot disagree
    # with the register (the conflict rule skips the field's own source), so they are
    # left out of the million-row join that looks for disagreements.
    pairs = [(src.name, src.role) for src in asset_sources]
    never_differ = [
        name
        for name, _ in pairs
        if all(linking.precedence(s, f, pairs)[0] == name for f in CONFLICT_FIELDS)
    ]
    if never_differ:
        several_sources += f" AND l.source NOT IN {in_list(never_differ)}"
    unlinked_possible = (
        "asset_key IS NULL"
        if any(src.role not in s.register_roles for src in asset_sources)
        else "false"
    )
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
    return candidates
