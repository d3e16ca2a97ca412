"""The reconciliation engine: freeze → normalize → match → classify → outputs.

The five steps of the seed method (000) as named DuckDB SQL stages
(:mod:`~tagsweep.engine.stages`); ``tagsweep reconcile run --debug-dir DIR`` writes
every stage's table to ``DIR/<group>.<stage>.parquet``. A stage read once or cheap to
recompute is a view (marked *view*), the others are tables. In order:

* freeze (``tagsweep reconcile freeze``, :mod:`~tagsweep.engine.freeze`): exports →
  snapshot; the run only reads snapshots. Each export is read by
  :mod:`~tagsweep.engine.export_reader` (CSV, XLSX, JSON, Parquet readers; encodings in
  :mod:`~tagsweep.engine.text_encoding`, cleaning in :mod:`~tagsweep.engine.hygiene`);
  the snapshot's records and manifest are :mod:`~tagsweep.engine.snapshot`.
* normalize (:mod:`~tagsweep.engine.normalize`, cleaning with the vocabulary and SQL
  macros of :mod:`~tagsweep.engine.cleaning`): ``people``, ``person_keys`` (HR,
  leavers), ``source_rows`` (*view*: preset column mapping), ``source_records``
  (serials, placeholders, aliases, lifecycle, custodians, bad rows); then
  (:mod:`~tagsweep.engine.linking`) ``other_links`` (MDM/finance records → register
  assets by tag, serial, UUID, MAC), ``record_links`` (*view*), ``register_duplicates``,
  ``register`` (per-field source of truth + provenance; a *view* when there is one
  asset source).
* match (:mod:`~tagsweep.engine.match`): ``observations_all`` (count rows, EPC →
  asset tag; computed while normalize builds the register), ``observed_items``
  (*view*: one per counted item), ``matches`` (one per counted item: the register
  asset it is, or none, by tier, with a verdict).
* classify (:mod:`~tagsweep.engine.classify`): ``register_scoped`` (*view*),
  ``found_assets`` (*view*), ``asset_checks`` (:mod:`~tagsweep.engine.asset_checks`:
  one pass over the register: assets with a register-centred variance and a flag per
  type), ``variance_candidates`` (*view*, :mod:`~tagsweep.engine.variance_rules`: one
  SELECT per variance type), ``variances`` (ids, priority, SLA).
* outputs (:mod:`~tagsweep.engine.outputs`, :mod:`~tagsweep.engine.report`):
  matches.parquet is written while classify runs, register.parquet and the corrections
  while the variance log is written (the order and the overlap:
  :mod:`~tagsweep.engine.pipeline`). A run's inputs are read and verified by
  :mod:`~tagsweep.engine.run_inputs`.

Public surface:

* :func:`tagsweep.engine.freeze.freeze` / ``tagsweep reconcile freeze`` — exports →
  snapshot directory.
* :func:`tagsweep.engine.run.reconcile` / ``tagsweep reconcile run`` — snapshot (or a
  previous golden register ``.parquet`` with the columns of ``register.parquet``) plus
  session files and count sheets → run folder.
* :mod:`tagsweep.engine.presets` (a package: one module per kind of system) — column
  presets: snipeit, netbox, servicenow (alm_hardware), intune, jamf, sap_fiaa, generic,
  fixed_asset, procurement, hr.

Snapshot directory (stable names):

``snapshot.json``
    sources (name, preset, role, original file, sha256 of the export, sha256 of the
    frozen copy, rows, bad rows, export time, column mapping), warnings, bad rows.
``<source>.parquet``
    the export with every column as text plus ``_line`` (line in the original file).
``exports/<source>.<ext>``
    the original export, byte for byte.

Run folder (stable names; the case workflow and golden register build on them):

``variances.parquet`` / ``variances.csv`` / ``variances.jsonl``
    the variance log, columns exactly :data:`tagsweep.domain.VARIANCE_LOG_COLUMNS`;
    ``variance_id`` = ``V-`` + sha256(type | asset key | detail key)[:16], stable
    across runs for the same variance. The CSV quotes every text cell and escapes
    formula injection.
``register.parquet``
    the normalized register, one row per ``asset_key``: asset_tag, serial,
    manufacturer, model, category, location, status (canonical lifecycle),
    status_label (the source's words), condition, custodian, value, hardware_uuid, mac,
    hostname, last_seen, then ``<field>_source`` provenance for each of them, and
    ``sources`` (every source holding the asset, comma-separated).
``matches.parquet``
    asset_key ↔ obs_key (counted item), tier (asset_tag | serial | lookalike_serial),
    match_status (confirmed | identity_conflict | probable), session_id, observed tag
    and serial, epc, found_location, methods.
``corrections/<source>.csv``
    proposed changes per source: variance_id, variance_type, priority, source,
    asset_key, asset_tag, serial, action (update | create | retire | review), field,
    current_value, proposed_value, reason.
``bad_rows.csv``
    every row kept out (a line the reader cannot split, a record without any
    identifier), from freeze and from the run: source, file, line, reason.
``bad_values.csv``
    every value that did not parse and was emptied, its record kept: source, file,
    line, column (the export's header), value, reason.
``report.md`` / ``report.html``
    summary with totals, per type/priority/location, the variance rate and the
    seed's <5 % / >15 % bands, and the variance review table in the seed's layout.
``manifest.json``
    run_id, tagsweep_version, as_of, scope, config_sha256, inputs (hashes of the
    snapshot and every count file), counts, warnings, sha256 of every output.
"""
