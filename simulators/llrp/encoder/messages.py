"""LLRP messages and parameters as a reader writes them: the header, TLV/TV and vendor
(custom) parameters, the message type numbers, LLRPStatus and status responses,
READER_EVENT_NOTIFICATIONs and KEEPALIVE."""

from __future__ import annotations

import struct
from typing import Final

LLRP_VERSION: Final = 1
TYPE_CUSTOM: Final = 1023
VENDOR_IMPINJ: Final = 25882


class MessageType:
    """LLRP 1.0.1 message type numbers (section 16.1)."""

    GET_READER_CAPABILITIES = 1
    GET_READER_CONFIG = 2
    SET_READER_CONFIG = 3
    CLOSE_CONNECTION_RESPONSE = 4
    GET_READER_CAPABILITIES_RESPONSE = 11
    GET_READER_CONFIG_RESPONSE = 12
    SET_READER_CONFIG_RESPONSE = 13
    CLOSE_CONNECTION = 14
    ADD_ROSPEC = 20
    DELETE_ROSPEC = 21
    START_ROSPEC = 22
    STOP_ROSPEC = 23
    ENABLE_ROSPEC = 24
    DISABLE_ROSPEC = 25
    ADD_ROSPEC_RESPONSE = 30
    DELETE_ROSPEC_RESPONSE = 31
    START_ROSPEC_RESPONSE = 32
    STOP_ROSPEC_RESPONSE = 33
    ENABLE_ROSPEC_RESPONSE = 34
    DISABLE_ROSPEC_RESPONSE = 35
    ADD_ACCESSSPEC = 40
    DELETE_ACCESSSPEC = 41
    ENABLE_ACCESSSPEC = 42
    DISABLE_ACCESSSPEC = 43
    ADD_ACCESSSPEC_RESPONSE = 50
    DELETE_ACCESSSPEC_RESPONSE = 51
    ENABLE_ACCESSSPEC_RESPONSE = 52
    DISABLE_ACCESSSPEC_RESPONSE = 53
    GET_REPORT = 60
    RO_ACCESS_REPORT = 61
    KEEPALIVE = 62
    READER_EVENT_NOTIFICATION = 63
    ENABLE_EVENTS_AND_REPORTS = 64
    KEEPALIVE_ACK = 72
    ERROR_MESSAGE = 100
    CUSTOM_MESSAGE = TYPE_CUSTOM


#: Request type → response type, for the requests a reader answers with LLRPStatus.
RESPONSE_TO: Final[dict[int, int]] = {
    MessageType.SET_READER_CONFIG: MessageType.SET_READER_CONFIG_RESPONSE,
    MessageType.ADD_ROSPEC: MessageType.ADD_ROSPEC_RESPONSE,
    MessageType.DELETE_ROSPEC: MessageType.DELETE_ROSPEC_RESPONSE,
    MessageType.START_ROSPEC: MessageType.START_ROSPEC_RESPONSE,
    MessageType.STOP_ROSPEC: MessageType.STOP_ROSPEC_RESPONSE,
    MessageType.ENABLE_ROSPEC: MessageType.ENABLE_ROSPEC_RESPONSE,
    MessageType.DISABLE_ROSPEC: MessageType.DISABLE_ROSPEC_RESPONSE,
    MessageType.ADD_ACCESSSPEC: MessageType.ADD_ACCESSSPEC_RESPONSE,
    MessageType.DELETE_ACCESSSPEC: MessageType.DELETE_ACCESSSPEC_RESPONSE,
    MessageType.ENABLE_ACCESSSPEC: MessageType.ENABLE_ACCESSSPEC_RESPONSE,
    MessageType.DISABLE_ACCESSSPEC: MessageType.DISABLE_ACCESSSPEC_RESPONSE,
}


class Status:
    """LLRPStatus codes (section 16.2.8.1) the simulator uses."""

    SUCCESS = 0
    PARAMETER_ERROR = 100
    UNSUPPORTED_MESSAGE = 109
    A_INVALID = 300
    DEVICE_ERROR = 401


_HEADER = struct.Struct(">HII")
HEADER_SIZE: Final = _HEADER.size


# -- messages and parameters -------------------------------------------------------------
def message(msg_type: int, msg_id: int, body: bytes = b"") -> bytes:
    """One LLRP message: version 1, type, total length, message id, body."""
    return _HEADER.pack((LLRP_VERSION << 10) | msg_type, HEADER_SIZE + len(body), msg_id) + body


def custom_message(vendor: int, subtype: int, msg_id: int, body: bytes = b"") -> bytes:
    """A CUSTOM_MESSAGE: the header is followed by vendor id (u32) and subtype (u8)."""
    return message(TYPE_CUSTOM, msg_id, struct.pack(">IB", vendor, subtype) + body)


def tlv(param_type: int, body: bytes = b"") -> bytes:
    """A TLV parameter: 6 reserved bits + 10-bit type, u16 length including the header."""
    return struct.pack(">HH", param_type & 0x3FF, 4 + len(body)) + body


def custom_param(vendor: int, subtype: int, body: bytes = b"") -> bytes:
    return tlv(TYPE_CUSTOM, struct.pack(">II", vendor, subtype) + body)


def tv(param_type: int, body: bytes) -> bytes:
    """A TV parameter: 1 marker bit + 7-bit type, then a fixed-size value."""
    return bytes([0x80 | param_type]) + body


def llrp_status(code: int = Status.SUCCESS, description: str = "") -> bytes:
    text = description.encode()
    return tlv(287, struct.pack(">HH", code, len(text)) + text)


def status_response(
    response_type: int, msg_id: int, code: int = Status.SUCCESS, description: str = ""
) -> bytes:
    return message(response_type, msg_id, llrp_status(code, description))


def utc_timestamp(us: int) -> bytes:
    return tlv(128, struct.pack(">Q", us))


def reader_event_connection_attempt(msg_id: int, now_us: int, status: int = 0) -> bytes:
    """READER_EVENT_NOTIFICATION with ConnectionAttemptEvent (0 = Success)."""
    data = utc_timestamp(now_us) + tlv(256, struct.pack(">H", status))
    return message(MessageType.READER_EVENT_NOTIFICATION, msg_id, tlv(246, data))


def reader_event_connection_close(msg_id: int, now_us: int) -> bytes:
    data = utc_timestamp(now_us) + tlv(257)
    return message(MessageType.READER_EVENT_NOTIFICATION, msg_id, tlv(246, data))


def keepalive(msg_id: int) -> bytes:
    return message(MessageType.KEEPALIVE, msg_id)
