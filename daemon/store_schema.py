"""The tables of the gateway's DuckDB store (see :mod:`tagsweep.daemon.store`), and the
migrations that bring a store made by an older daemon up to date."""

from __future__ import annotations

SCHEMA_VERSION = 2

SIGHTING_COLUMNS = """
    sighting_id UBIGINT NOT NULL,
    epc VARCHAR NOT NULL,
    reader VARCHAR NOT NULL,
    antenna USMALLINT NOT NULL,
    first_seen_us BIGINT NOT NULL,
    last_seen_us BIGINT NOT NULL,
    read_count UBIGINT NOT NULL,
    peak_rssi FLOAT,
    mean_rssi FLOAT
"""

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS store_meta (key VARCHAR PRIMARY KEY, value VARCHAR);
CREATE TABLE IF NOT EXISTS sightings ({SIGHTING_COLUMNS});
CREATE TABLE IF NOT EXISTS open_sightings ({SIGHTING_COLUMNS});
CREATE TABLE IF NOT EXISTS reads (
    epc VARCHAR NOT NULL, reader VARCHAR NOT NULL, antenna USMALLINT, rssi FLOAT,
    first_seen_us BIGINT NOT NULL, last_seen_us BIGINT, seen_count UINTEGER,
    phase FLOAT, doppler_hz FLOAT
);
CREATE TABLE IF NOT EXISTS scans (
    ts_us BIGINT NOT NULL, scanner VARCHAR NOT NULL, session_id VARCHAR,
    kind VARCHAR NOT NULL, value VARCHAR, data VARCHAR, symbology VARCHAR,
    location VARCHAR
);
CREATE TABLE IF NOT EXISTS sessions (
    session_id VARCHAR PRIMARY KEY, site VARCHAR NOT NULL, operator VARCHAR NOT NULL,
    scope VARCHAR NOT NULL, started_us BIGINT NOT NULL, ended_us BIGINT,
    state VARCHAR NOT NULL, file VARCHAR, sha256 VARCHAR, row_count BIGINT,
    expected VARCHAR
);
CREATE TABLE IF NOT EXISTS location_contexts (
    session_id VARCHAR, ts_us BIGINT NOT NULL, location VARCHAR NOT NULL,
    source VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS observations (
    session_id VARCHAR NOT NULL, site VARCHAR, method VARCHAR NOT NULL,
    location VARCHAR NOT NULL, epc VARCHAR, asset_tag VARCHAR, serial VARCHAR,
    first_seen_us BIGINT, last_seen_us BIGINT, read_count BIGINT, peak_rssi FLOAT,
    reader VARCHAR, operator VARCHAR
);
CREATE TABLE IF NOT EXISTS reader_status (
    ts_us BIGINT NOT NULL, reader VARCHAR NOT NULL, state VARCHAR NOT NULL, reason VARCHAR
);
"""

#: Columns added after version 1, for stores created by an older daemon (DuckDB's
#: ``ADD COLUMN IF NOT EXISTS`` is a no-op on a store created by the current schema).
MIGRATIONS = """
ALTER TABLE sessions ADD COLUMN IF NOT EXISTS expected VARCHAR;
ALTER TABLE scans ADD COLUMN IF NOT EXISTS operator VARCHAR;
ALTER TABLE scans ADD COLUMN IF NOT EXISTS scan_id VARCHAR;
"""
