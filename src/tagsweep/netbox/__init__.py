"""NetBox, live: pull a register from its REST API, push a count's results back.

* :mod:`~tagsweep.netbox.client` — the REST client: v1/v2 tokens, bounded concurrency,
  retries with backoff, clear 401/403/404 errors.
* :mod:`~tagsweep.netbox.pull` — ``reconcile freeze --source NAME:netbox-api=URL``.
* :mod:`~tagsweep.netbox.fields` — NetBox status values and location paths.

The push (``tagsweep netbox push``) reads a run folder and the case store, so it lives
with the engine (:mod:`tagsweep.engine.netbox_push`).
"""
