"""UHF RFID readers over LLRP: sllurp, supervised, bridged into asyncio.

``llrp://host[:5084]?antennas=1,2&keepalive_s=5&watchdog_intervals=3&tx_power=30``
``llrps://host[:5085]?tls_fingerprint=SHA256`` (LLRP over TLS 1.2+; the reader's
certificate pinned by its SHA-256 fingerprint, or ``tls_ca=/path/ca.pem`` to verify it
against a CA file; one of the two is required)

sllurp runs the LLRP session (capabilities, configuration, ROSpec) on its own thread.
What it lacks for a gateway that must never silently stop reading is added here:

* **framing we control** (:mod:`.frames`, :mod:`.reports`): sllurp's reader thread
  calls our ``raw_data_received``; frames are length-bounded and resynchronised, so one
  bad frame costs that frame and nothing after it. RO_ACCESS_REPORTs go through our
  numpy decoder (tens of times faster than sllurp's per-tag dicts, see
  ``benchmarks/bench_llrp.py``; validated against sllurp on every report in the tests and
  live with ``validate=1``); all other messages are decoded by sllurp
  and drive its state machine. Any exception while handling one frame is counted and
  logged; it never reaches the thread's loop, which sllurp would silently end.
* **a keepalive watchdog**: the reader is configured to send KEEPALIVE every
  ``keepalive_s``; one silent interval (no keepalive, no report) marks the reader
  DEGRADED, ``watchdog_intervals`` of them raise :class:`DriverError` and the base class
  reconnects with capped, jittered backoff.
* **thread supervision**: a dead reader thread or a lost socket is a DriverError too.
* **one bridge into asyncio**: the thread queues decoded batches and wakes the event
  loop with ``loop.call_soon_threadsafe`` (at most one wake-up in flight); when the
  consumer falls behind by ``max_pending_reads`` the thread stops reading the socket,
  so TCP flow control pushes back on the reader instead of memory growing.
* **clean shutdown**: STOP_ROSPEC, DELETE_ROSPEC and CLOSE_CONNECTION, wait briefly for
  the CLOSE_CONNECTION_RESPONSE, close the socket, join the thread.
* **a continuous ROSpec**: no AISpec stop trigger (sllurp's ``report_every_n_tags``
  stops and restarts inventory per report); reports are cut by the ROReportSpec
  trigger "upon N tags" instead. On connect only our own ROSpec id is deleted, never
  the ROSpecs of other clients.

Options: see :class:`~tagsweep.drivers.llrp.settings.LlrpSettings`.

The package's modules, from the gateway's side inwards:

* :mod:`.driver`: :class:`LlrpDriver`, the asyncio side (connect, receive with the
  keepalive watchdog, the reader's signals into counters and logs, polite close);
* :mod:`.settings`: the validated options, the TLS context and the certificate pin;
* :mod:`.bridge`: the reader thread → event loop hand-over with back-pressure;
* :mod:`.client`: the reader thread (socket and TLS, receive loop, frame dispatch,
  report decoding and validation);
* :mod:`.session`: sllurp's session state machine with our reader configuration
  (power table, frequencies, the continuous ROSpec and its housekeeping);
* :mod:`.refusals`: why a reader refused a session or a request, in its own words;
* :mod:`.frames`: the message header and the bounded, resynchronising framer;
* :mod:`.reports`: the fast RO_ACCESS_REPORT decoder into READ_DTYPE batches;
* :mod:`.reader_clock`: a reader's timestamps re-anchored on this gateway's clock;
* :mod:`.sllurp_reads`: sllurp's decode of the same reports, to cross-check ours.

Beside the streaming driver: :mod:`.access` writes tags (one AccessSpec at a bench) and
:mod:`.capture` decodes a capture of what a reader sent, with the same framer and
decoder.
"""

from tagsweep.drivers.llrp.driver import LlrpDriver
from tagsweep.drivers.llrp.settings import (
    DEFAULT_PORT,
    DEFAULT_TLS_PORT,
    LlrpSettings,
    verify_fingerprint,
)

__all__ = ["DEFAULT_PORT", "DEFAULT_TLS_PORT", "LlrpDriver", "LlrpSettings", "verify_fingerprint"]
