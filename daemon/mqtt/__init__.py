"""MQTT output: a durable outbox in DuckDB and a publisher that drains it with QoS 1.

Why an outbox: a broker outage must never lose an event and never slow down reading.
Every gateway event is first committed to the ``mqtt_outbox`` table (in the daemon's
own DuckDB file, next to the sightings), and only then published. A row is marked sent
only after the broker's PUBACK, so a crash or a dropped connection at worst re-publishes
a few events — with the same ``event_id``, so consumers can de-duplicate. The publisher
always drains in ``seq`` order, so after an outage the backlog arrives in the order the
events happened.

The outbox is bounded: when the broker stays away longer than the retention, or the
backlog exceeds ``outbox_max_rows``, the oldest unsent events are dropped, counted in
``tagsweep_mqtt_outbox_dropped_events_total`` and logged as a warning — a full disk
would stop the whole gateway, a dropped live event only stops the live view.

Topic layout: ``<prefix>/<site>/<gateway>/<kind>`` (``kind`` is an
:class:`~tagsweep.daemon.events.EventKind` value), and a retained
``<prefix>/<site>/<gateway>/status`` that the broker turns to ``offline`` (last will)
when the gateway disappears.

The modules:

* :mod:`~tagsweep.daemon.mqtt.outbox` — :class:`~.outbox.Outbox`, the durable, ordered,
  bounded queue in DuckDB (the gateway's event sink);
* :mod:`~tagsweep.daemon.mqtt.publisher` — :class:`~.publisher.MqttPublisher`, which
  drains the outbox to the broker, pipelined, and records PUBACKs;
* :mod:`~tagsweep.daemon.mqtt.connection` — the broker client from ``[mqtt]``: TLS,
  credentials, last will;
* :mod:`~tagsweep.daemon.mqtt.topics` — topic names and the status payload.
"""
