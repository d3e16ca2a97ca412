"""The live view: what a running count session has seen of what its scope should hold.

* :mod:`~tagsweep.daemon.liveview.count` — the model: expected assets per location,
  ticked off by reads and scans (:class:`LiveCount`, :class:`LiveView`);
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
