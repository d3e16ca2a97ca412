"""Reader profiles: the simulated reader behaves like a given vendor's reader.

Real fleets are Impinj, Zebra and ThingMagic readers that differ in ways that break
clients; each behaviour below is one a client has met, with where it is documented.
``generic`` is the idealised reader the simulator always was.

Every profile refuses a second client while one is connected (a
ConnectionAttemptEvent "Failed_A_Client_Initiated_Connection_Already_Exists", then the
connection is closed: LLRP 1.0.1 section 13.2.6.11, and what an R420 does while
ItemTest is connected), caps the size of its messages (a large report is cut into
several) and writes every report in two TCP segments (a client must reassemble).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Final

from tagsweep.simulators.llrp.encoder import (
    TYPE_CUSTOM,
    VENDOR_IMPINJ,
    ReaderIdentity,
    ROSpecRequest,
    Status,
    custom_param,
)

#: Zebra (formerly Motorola Solutions) IANA private enterprise number, as its LLRP
#: custom parameters carry it (sllurp's decoder: VENDOR_ID_MOTOROLA = 161)
VENDOR_ZEBRA: Final = 161
#: ThingMagic's IANA private enterprise number
VENDOR_THINGMAGIC: Final = 26554
#: LLRPStatus code M_UnsupportedVersion (LLRP 1.1 section 14.2.8.1; an LLRP 1.0.1-only
#: reader answers GET_SUPPORTED_VERSION, a 1.1 message, with it)
M_UNSUPPORTED_VERSION: Final = 110
GET_SUPPORTED_VERSION: Final = 46


@dataclass(frozen=True, slots=True)
class ReaderProfile:
    """How one kind of reader behaves, beyond what LLRP 1.0.1 fixes."""

    name: str
    identity: ReaderIdentity = field(default_factory=ReaderIdentity)
    #: ADD_ROSPEC beyond this many ROSpecs is refused (Impinj: 1)
    max_rospecs: int | None = None
    #: an AISpec with more InventoryParameterSpecs is refused (Impinj: 1)
    max_inventory_specs_per_aispec: int | None = None
    #: AISpecStopTrigger types refused with the reader's own words (ThingMagic: 3)
    refused_ai_stop_triggers: tuple[int, ...] = ()
    #: Impinj custom parameters are refused until IMPINJ_ENABLE_EXTENSIONS
    extensions_need_enabling: bool = False
    #: LLRP 1.0.1 only: GET_SUPPORTED_VERSION gets ERROR_MESSAGE M_UnsupportedVersion
    llrp_1_0_1_only: bool = False
    #: HoldEventsAndReportsUponReconnect: no report, keepalive or event (other than the
    #: connection attempt) until the client sends ENABLE_EVENTS_AND_REPORTS
    hold_until_enabled: bool = False
    #: keepalives on from the start, before any SET_READER_CONFIG (0: off)
    default_keepalive_ms: int = 0
    #: TagReportContentSelector flags when the client's ROReportSpec gives none
    factory_selector_flags: int = 0xFFFF
    #: vendor parameters the reader adds unasked to capabilities, config and each tag report
    capabilities_extra: bytes = b""
    config_extra: bytes = b""
    tag_extra: bytes = b""
    #: largest message the reader sends (reports are cut to fit)
    max_message_bytes: int = 1 << 20
    #: every report is written in two TCP segments
    split_segments: bool = True
    #: a second client is refused while one is connected
    one_client: bool = True


def _impinj(name: str, model: int) -> ReaderProfile:
    # Power table from index 1 = 10.00 dBm in 0.25 dB steps (sllurp's Impinj test
    # capabilities, tests/test_llrp.py, and PR sllurp/sllurp#142 "For Impinj speedway
    # readers the table starts at index 1"); MaxROSpecs = 1 and one
    # InventoryParameterSpec per AISpec (Impinj Octane LLRP reference, "LLRP
    # Capabilities": MaxNumROSpecs 1, MaxNumInventoryParameterSpecsPerAISpec 1); Impinj
    # extensions only after IMPINJ_ENABLE_EXTENSIONS (Octane LLRP; pyllrp's
    # TagWriter and the Impinj LTK example in Azure/iot-plug-and-play-bridge
    # impinj_reader_r700/cap/main.cpp call enableImpinjExtensions first); LLRP 1.0.1
    # only, so GET_SUPPORTED_VERSION is answered with ERROR_MESSAGE M_UnsupportedVersion
    # (EdgeX device-rfid-llrp-go, "Hacker's Guide to LLRP", version negotiation).
    return ReaderProfile(
        name,
        ReaderIdentity(
            manufacturer=VENDOR_IMPINJ,
            model=model,
            firmware="5.14.0.240" if model == 2001002 else "7.6.0.240",
            power_dbm=tuple(10.0 + 0.25 * i for i in range(91)),
        ),
        max_rospecs=1,
        max_inventory_specs_per_aispec=1,
        extensions_need_enabling=True,
        llrp_1_0_1_only=True,
    )


def _zebra() -> ReaderProfile:
    # sllurp/sllurp#115 "No Tag Reads from Zebra FX-9600": the FX holds events and
    # reports after a (re)connect until ENABLE_EVENTS_AND_REPORTS, and its factory
    # ROReportSpec reports nothing unless the client's selector asks for it; sllurp
    # PR #142 (issue #141) "fix TX power configuration compatibility with Zebra FX9600":
    # its TransmitPowerLevelTable starts at index 0 (here 10.0 to 30.0 dBm in 0.1 dB);
    # Motorola custom parameters (vendor 161) come unasked in capabilities
    # (MotoGeneralCapabilities, subtype 1), config (MotoAutonomousState, 101) and tag
    # reports (sllurp's llrp_proto.py "Custom Zebra Parameters").
    general = custom_param(VENDOR_ZEBRA, 1, struct.pack(">IB", 1, 0xFC))
    return ReaderProfile(
        "zebra-fx9600",
        ReaderIdentity(
            manufacturer=VENDOR_ZEBRA,
            model=9600,
            firmware="3.10.30",
            power_dbm=tuple(round(10.0 + 0.1 * i, 1) for i in range(201)),
            power_index_base=0,
            reader_id=b"\x84\x24\x8d\xfc\x00\x01",
        ),
        hold_until_enabled=True,
        default_keepalive_ms=5000,
        factory_selector_flags=0,
        capabilities_extra=general,
        config_extra=custom_param(VENDOR_ZEBRA, 101, b"\x00"),
        tag_extra=custom_param(VENDOR_ZEBRA, 42, b"\x00\x00\x00\x01"),
        max_message_bytes=64 * 1024,
    )


def _thingmagic() -> ReaderProfile:
    # sllurp/sllurp#57 and #177 "ThingMagic Sargas: Unsupported StopTrigger 3": ADD_ROSPEC
    # answered "ADD_ROSPEC: Error: Adding AISpec with unsupported StopTrigger 3" for an
    # AISpec stop trigger of type TagObservation. Two antenna ports, 2 GPI / 2 GPO.
    return ReaderProfile(
        "thingmagic-sargas",
        ReaderIdentity(
            antennas=2,
            manufacturer=VENDOR_THINGMAGIC,
            model=0x53415247,  # "SARG"
            firmware="5.3.2.93",
            power_dbm=tuple(5.0 + 0.5 * i for i in range(54)),
            gpis=2,
            gpos=2,
        ),
        refused_ai_stop_triggers=(3,),
        max_message_bytes=32 * 1024,
    )


PROFILES: Final[dict[str, ReaderProfile]] = {
    "generic": ReaderProfile("generic", split_segments=False),
    "impinj-r420": _impinj("impinj-r420", 2001002),
    # R700: same LLRP behaviour; also serves LLRP over TLS (llrps://, port 5085)
    "impinj-r700": _impinj("impinj-r700", 2001052),
    "zebra-fx9600": _zebra(),
    "thingmagic-sargas": _thingmagic(),
}


def profile(name: str) -> ReaderProfile:
    try:
        return PROFILES[name]
    except KeyError:
        known = ", ".join(PROFILES)
        raise ValueError(f"unknown reader profile {name!r}; known: {known}") from None


def rospec_refusal(
    profile: ReaderProfile, request: ROSpecRequest, rospecs: int, extensions_enabled: bool
) -> tuple[int, str] | None:
    """Why this reader refuses an ADD_ROSPEC (LLRPStatus code, its own words), or None."""
    if profile.max_rospecs is not None and rospecs >= profile.max_rospecs:
        return Status.A_INVALID, (
            f"ADD_ROSPEC: the reader supports {profile.max_rospecs} ROSpec(s) "
            "(MaxNumROSpecs); delete the other one first"
        )
    for aispec in request.aispecs:
        if aispec.stop_trigger in profile.refused_ai_stop_triggers:
            return Status.PARAMETER_ERROR, (
                f"ADD_ROSPEC: Error: Adding AISpec with unsupported StopTrigger "
                f"{aispec.stop_trigger}"
            )
        limit = profile.max_inventory_specs_per_aispec
        if limit is not None and aispec.inventory_parameter_specs > limit:
            return Status.PARAMETER_ERROR, (
                f"ADD_ROSPEC: AISpec has {aispec.inventory_parameter_specs} "
                f"InventoryParameterSpecs; the reader takes {limit}"
            )
    impinj = struct.pack(">HHI", TYPE_CUSTOM, 0, VENDOR_IMPINJ)[4:]
    if profile.extensions_need_enabling and not extensions_enabled and impinj in request.raw:
        return Status.PARAMETER_ERROR, (
            "ADD_ROSPEC: Impinj custom parameter before IMPINJ_ENABLE_EXTENSIONS"
        )
    return None
