"""The live view: what a running count session has seen of what its scope should hold.

* :mod:`~tagsweep.daemon.liveview.count` — the model: expected assets per location,
  ticked off by reads and scans (:class:`LiveCount`); it is loaded from
  :mod:`~tagsweep.daemon.liveview.register` (the expected register file) and rolls up
  along :mod:`~tagsweep.daemon.liveview.scope` (location paths against the scope);
* :mod:`~tagsweep.daemon.liveview.view` — the daemon-wide :class:`LiveView`: the live
  counts of its sessions and the health of its readers and scanners;
* :mod:`~tagsweep.daemon.liveview.feed` — the gateway's events into the model
  (:func:`attach_live_view`);
* :mod:`~tagsweep.daemon.liveview.server` — the page and its JSON API over HTTP, with
  ``templates/`` and ``static/``; :mod:`~tagsweep.daemon.liveview.access` — who may use
  them (token, browser sessions); :mod:`~tagsweep.daemon.liveview.certificate` — the
  self-signed certificate a phone needs (``tagsweep web cert``);
* :mod:`~tagsweep.daemon.liveview.camera` — the page's camera mode over HTTP, and
  :mod:`~tagsweep.daemon.liveview.phones` — what phones scan, as barcode scans;
* :mod:`~tagsweep.daemon.liveview.terminal` — ``tagsweep session progress``.
"""
