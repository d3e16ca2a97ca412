"""Why a reader refused: a session (a failed ConnectionAttemptEvent) or a request (a
response whose LLRPStatus is not success), in words an operator can act on."""

from __future__ import annotations

from typing import Final

from sllurp.llrp import LLRPMessage
from sllurp.llrp_proto import ConnEvent_Name2Type, ConnEvent_Type2Name

#: Why a reader refuses a session: ConnectionAttemptEvent status (LLRP 1.0.1 13.2.6.11)
#: → what it means. Status 4 ("another connection attempted") is not a refusal: it tells
#: the client in session that somebody else tried to connect.
_REFUSALS: Final[dict[int, str]] = {
    1: "the reader already has a connection it opened itself (reader-initiated mode)",
    2: (
        "another client is connected to the reader (an LLRP reader takes one client: "
        "close the other one, e.g. the vendor's test tool)"
    ),
    3: "the reader could not open a session",
}
ANOTHER_CONNECTION_ATTEMPTED: Final = 4


def refusal_status(message: LLRPMessage) -> str:
    """``ADD_ROSPEC_RESPONSE: M_ParameterError 'why'`` for a response whose LLRPStatus is
    not success, naming the parameter or field the reader points at ("" otherwise)."""
    for name, body in (message.msgdict or {}).items():
        status = body.get("LLRPStatus") if isinstance(body, dict) else None
        if not isinstance(status, dict) or status.get("StatusCode") in (None, 0, "M_Success"):
            continue
        text = f"{name}: {status.get('StatusCode')} {status.get('ErrorDescription', '')!r}"
        for key in ("ParameterError", "FieldError"):
            if status.get(key):
                text += f" ({key} {status[key]})"
        return text
    return ""


def attempt_status(message: LLRPMessage) -> int | None:
    """The status of a ConnectionAttemptEvent (None when the message is anything else)."""
    event = (message.msgdict or {}).get("READER_EVENT_NOTIFICATION")
    if not isinstance(event, dict):
        return None
    attempt = event.get("ReaderEventNotificationData", {}).get("ConnectionAttemptEvent")
    if not isinstance(attempt, dict):
        return None
    return int(ConnEvent_Name2Type.get(str(attempt.get("Status", "Success")), 0))


def refusal(message: LLRPMessage) -> str:
    """Why the reader refused the session, from a failed ConnectionAttemptEvent ("" when
    the message is anything else)."""
    status = attempt_status(message)
    why = _REFUSALS.get(status) if status is not None else None
    return f"{why} (ConnectionAttemptEvent: {ConnEvent_Type2Name[status]})" if why else ""
