"""Dedup kernel: the raw read flood → sightings, on whole numpy columns.

A *sighting* is a run of reads of one EPC on one reader antenna whose gaps stay under
``window_us``. The gap of a read is its ``first_seen_us`` minus the latest
``last_seen_us`` of the reads before it in the run, so an aggregated LLRP report (one
report covering many inventory rounds) counts as covering its whole time span.

Why a vectorised kernel: a handheld reports thousands of reads per second and a portal
many more; a Python loop over reads would be the slowest part of the gateway. The
kernel pulls the EPC words and the numeric fields out of the 100-byte records in two
block copies, then reduces each read once to a dense integer *key id* of its (reader,
antenna, EPC) key within the batch: the key's hash picks a slot of a scratch table, one
read per slot leads, and every read's EPC words and port are compared with its lead's
exactly (a hash only chooses where to look; it never decides that two keys are the
same). Everything after that works on key ids. A key whose reads cannot hold a gap ≥
window (no empty half-window time slice between its first and last read) is one run,
aggregated with ``bincount`` and ``ufunc.at``, no sort; the other keys' reads take one
value sort of packed (key id, arrival) integers, run boundaries from array comparisons
and ``ufunc.reduceat``.

Only the leads are looked up in the persistent key registry, an open-addressing hash
table in numpy whose rows also hold each key's open sighting as columns.

Why carry-over: a sighting that is still open when a batch ends (no gap ≥ window
observed yet) must continue in the next batch, or results would depend on how the
stream happened to be cut. The open sighting of each key lives in the registry row of
the key, and the key's first run in the next batch joins it if the gap allows, so the
result is identical however the stream is split — provided, as readers do, that each
key's reads arrive in time order. (A read older than its key's open sighting still
joins it, through the exact path; it never raises.)

Sightings close when a later read of the key leaves a gap ≥ window, when the reader's
clock has moved on by a window (``Deduplicator.expire``), or at shutdown
(``Deduplicator.flush``). Keys without an open sighting are dropped from the registry
from time to time, so it stays about as large as the set of open sightings.

The modules:

* :mod:`~tagsweep.daemon.dedup.deduplicator` — :class:`~.deduplicator.Deduplicator`
  and :class:`~.deduplicator.DedupResult`, the only names the rest of the gateway uses;
* :mod:`~tagsweep.daemon.dedup.columns` — the record views and the batch's columns;
* :mod:`~tagsweep.daemon.dedup.keys` — key hashing, one batch's key ids, the registry;
* :mod:`~tagsweep.daemon.dedup.runs` — runs as columns and the two ways to find them.
"""
