"""Our own LLRP 1.0.1 encoder for the reader side of the protocol.

sllurp only encodes what a *client* sends; a simulated reader has to produce the
messages a reader sends (READER_EVENT_NOTIFICATION, the ``*_RESPONSE`` messages with
LLRPStatus, capabilities, KEEPALIVE and, above all, RO_ACCESS_REPORT). It is written
from the specification, independently of any decoder, so that decoding its output with
sllurp is a real cross-check (the property tests do exactly that).

The parts: :mod:`.messages` (message and parameter framing, type numbers, status
responses, events, keepalives), :mod:`.identity` (what the reader says about itself:
capabilities, configuration, its clock), :mod:`.reports` (vectorised RO_ACCESS_REPORT
encoding) and :mod:`.client_messages` (just enough decoding of what a client sends to
act on it: ADD_ROSPEC, SET_READER_CONFIG's keepalive). Import them from here
(``from tagsweep.simulators.llrp import encoder as enc``).
"""

from tagsweep.simulators.llrp.encoder.client_messages import (
    TV_SIZES,
    AISpecRequest,
    Param,
    ParameterError,
    ROSpecRequest,
    iter_params,
    parse_add_rospec,
    parse_keepalive_ms,
)
from tagsweep.simulators.llrp.encoder.identity import (
    UNSET_CLOCK_EPOCH_US,
    ReaderIdentity,
    parse_clock,
    reader_capabilities,
    reader_config,
)
from tagsweep.simulators.llrp.encoder.messages import (
    HEADER_SIZE,
    LLRP_VERSION,
    RESPONSE_TO,
    TYPE_CUSTOM,
    VENDOR_IMPINJ,
    MessageType,
    Status,
    custom_message,
    custom_param,
    keepalive,
    llrp_status,
    message,
    reader_event_connection_attempt,
    reader_event_connection_close,
    status_response,
    tlv,
    tv,
    utc_timestamp,
)
from tagsweep.simulators.llrp.encoder.reports import (
    DOPPLER_UNITS,
    EVERYTHING,
    IMPINJ_PEAK_RSSI,
    IMPINJ_RF_DOPPLER,
    IMPINJ_RF_PHASE_ANGLE,
    PHASE_UNITS,
    ContentSelector,
    epc_byte_lengths,
    ro_access_report,
    tag_report_data,
    tag_report_records,
)

__all__ = [
    "DOPPLER_UNITS",
    "EVERYTHING",
    "HEADER_SIZE",
    "IMPINJ_PEAK_RSSI",
    "IMPINJ_RF_DOPPLER",
    "IMPINJ_RF_PHASE_ANGLE",
    "LLRP_VERSION",
    "PHASE_UNITS",
    "RESPONSE_TO",
    "TV_SIZES",
    "TYPE_CUSTOM",
    "UNSET_CLOCK_EPOCH_US",
    "VENDOR_IMPINJ",
    "AISpecRequest",
    "ContentSelector",
    "MessageType",
    "Param",
    "ParameterError",
    "ROSpecRequest",
    "ReaderIdentity",
    "Status",
    "custom_message",
    "custom_param",
    "epc_byte_lengths",
    "iter_params",
    "keepalive",
    "llrp_status",
    "message",
    "parse_add_rospec",
    "parse_clock",
    "parse_keepalive_ms",
    "reader_capabilities",
    "reader_config",
    "reader_event_connection_attempt",
    "reader_event_connection_close",
    "ro_access_report",
    "status_response",
    "tag_report_data",
    "tag_report_records",
    "tlv",
    "tv",
    "utc_timestamp",
]
