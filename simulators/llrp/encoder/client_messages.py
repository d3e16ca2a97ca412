"""Decoding what a client sends, just enough to act on it: parameter lists
(:func:`iter_params`), ADD_ROSPEC into an :class:`ROSpecRequest` (boundary triggers,
AISpecs, antenna configuration, the ROReportSpec and its content selector), and the
keepalive interval of SET_READER_CONFIG."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final

from tagsweep.simulators.llrp.encoder.messages import TYPE_CUSTOM, VENDOR_IMPINJ
from tagsweep.simulators.llrp.encoder.reports import EVERYTHING, ContentSelector


@dataclass(slots=True)
class Param:
    """A decoded TLV/TV parameter: type, body and nested parameters (parsed lazily)."""

    type: int
    body: bytes
    vendor: int = 0
    subtype: int = 0

    def children(self, skip: int = 0) -> list[Param]:
        return list(iter_params(self.body[skip:]))

    def find(self, param_type: int, skip: int = 0) -> Param | None:
        return next((p for p in self.children(skip) if p.type == param_type), None)


#: Value sizes of TV-encoded parameters (type → bytes after the type byte).
TV_SIZES: Final[dict[int, int]] = {
    1: 2, 2: 8, 3: 8, 4: 8, 5: 8, 6: 1, 7: 2, 8: 2, 9: 4, 10: 2,
    11: 2, 12: 2, 13: 12, 14: 2, 15: 2, 16: 4, 17: 2, 18: 4, 19: 2, 20: 2,
}  # fmt: skip


class ParameterError(ValueError):
    """A parameter list that cannot be walked (truncated, unknown TV type, bad length)."""


def iter_params(data: bytes) -> Iterator[Param]:
    pos = 0
    while pos < len(data):
        first = data[pos]
        if first & 0x80:
            ptype = first & 0x7F
            size = TV_SIZES.get(ptype)
            if size is None or pos + 1 + size > len(data):
                raise ParameterError(f"unknown or truncated TV parameter {ptype} at byte {pos}")
            yield Param(ptype, data[pos + 1 : pos + 1 + size])
            pos += 1 + size
            continue
        if pos + 4 > len(data):
            raise ParameterError(f"truncated TLV header at byte {pos}")
        ptype, length = struct.unpack_from(">HH", data, pos)
        ptype &= 0x3FF
        if length < 4 or pos + length > len(data):
            raise ParameterError(f"TLV parameter {ptype} at byte {pos} has bad length {length}")
        if ptype == TYPE_CUSTOM and length >= 12:
            vendor, subtype = struct.unpack_from(">II", data, pos + 4)
            yield Param(ptype, data[pos + 12 : pos + length], vendor, subtype)
        else:
            yield Param(ptype, data[pos + 4 : pos + length])
        pos += length


@dataclass(slots=True)
class AISpecRequest:
    """One AISpec of an ROSpec: its antennas and stop trigger (LLRP 1.0.1 10.2.2)."""

    antennas: tuple[int, ...]
    stop_trigger: int = 0  # 0 Null, 1 Duration, 2 GPI with timeout, 3 TagObservation
    duration_ms: int = 0  # Duration's value, or GPI's / TagObservation's timeout
    #: TagObservationTrigger type: 0 upon seeing N tags or timeout, 1 upon no new tags
    #: for T ms or timeout, 2 N attempts to see all tags in the field or timeout
    observation: int = 0
    number_of_tags: int = 0
    number_of_attempts: int = 0
    quiet_ms: int = 0  # T of "no more new tags for T ms"
    inventory_parameter_specs: int = 0


@dataclass(slots=True)
class ROSpecRequest:
    """The parts of an ADD_ROSPEC the simulator acts on (and tests check)."""

    rospec_id: int
    start_trigger: int  # 0 Null, 1 Immediate, 2 Periodic, 3 GPI
    antennas: tuple[int, ...]
    report_trigger: int  # 0 None, 1 Upon_N_Tags_Or_End_Of_AISpec, 2 ..._Of_ROSpec
    report_n: int
    current_state: int = 0
    selector: ContentSelector = EVERYTHING
    ai_stop_trigger: int = 0  # 0 Null (continuous), 1 Duration, 2 GPI, 3 Tag observation
    tx_power_index: dict[int, int] = field(default_factory=dict)  # antenna → table index
    hop_table: dict[int, tuple[int, int]] = field(default_factory=dict)  # → (table, channel)
    session: dict[int, int] = field(default_factory=dict)  # antenna → Gen2 session
    search_mode: dict[int, int] = field(default_factory=dict)  # antenna → Impinj mode
    raw: bytes = field(default=b"", repr=False)
    period_offset_ms: int = 0  # Periodic start trigger: first start after, then every
    period_ms: int = 0
    stop_trigger: int = 0  # ROSpecStopTrigger: 0 Null, 1 Duration, 2 GPI with timeout
    stop_duration_ms: int = 0
    aispecs: list[AISpecRequest] = field(default_factory=list)
    report_spec: bool = False  # whether an ROReportSpec was given (else the reader's)


def parse_add_rospec(body: bytes, factory_flags: int = 0xFFFF) -> ROSpecRequest:
    """ADD_ROSPEC body → :class:`ROSpecRequest`; raises ParameterError when malformed."""
    rospec = next((p for p in iter_params(body) if p.type == 177), None)
    if rospec is None or len(rospec.body) < 6:
        raise ParameterError("ADD_ROSPEC has no ROSpec parameter")
    rospec_id, _priority, state = struct.unpack_from(">IBB", rospec.body)
    children = rospec.children(6)
    request = ROSpecRequest(rospec_id, 0, (), 0, 0, state, raw=rospec.body)
    for child in children:
        if child.type == 178:  # ROBoundarySpec
            start = child.find(179)
            if start is not None and start.body:
                request.start_trigger = start.body[0]
                periodic = start.find(180, 1)  # PeriodicTriggerValue: offset, period
                if periodic is not None and len(periodic.body) >= 8:
                    request.period_offset_ms, request.period_ms = struct.unpack_from(
                        ">II", periodic.body
                    )
            stop = child.find(182)
            if stop is not None and len(stop.body) >= 5:
                request.stop_trigger, request.stop_duration_ms = struct.unpack_from(
                    ">BI", stop.body
                )
        elif child.type == 183 and len(child.body) >= 2:  # AISpec
            _parse_aispec(child, request)
        elif child.type == 237 and len(child.body) >= 3:  # ROReportSpec
            request.report_spec = True
            request.report_trigger, request.report_n = struct.unpack_from(">BH", child.body)
            flags, impinj = factory_flags, False
            for part in child.children(3):
                if part.type == 238 and len(part.body) >= 2:  # TagReportContentSelector
                    flags = struct.unpack_from(">H", part.body)[0]
                elif (
                    part.type == TYPE_CUSTOM and part.vendor == VENDOR_IMPINJ and part.subtype == 50
                ):
                    impinj = any(
                        len(mode.body) >= 2 and struct.unpack_from(">H", mode.body)[0]
                        for mode in part.children()
                    )
            request.selector = ContentSelector.from_flags(flags, rospec_id, impinj)
    return request


def _parse_inventory_command(command: Param, antenna: int, request: ROSpecRequest) -> None:
    for part in command.children(1):
        if part.type == 336 and part.body:  # C1G2SingulationControl: session in 2 bits
            request.session[antenna] = part.body[0] >> 6
        elif _is_impinj(part, 23) and len(part.body) >= 2:  # ImpinjInventorySearchMode
            request.search_mode[antenna] = struct.unpack_from(">H", part.body)[0]


def _is_impinj(param: Param, subtype: int) -> bool:
    return param.type == TYPE_CUSTOM and param.vendor == VENDOR_IMPINJ and param.subtype == subtype


def _parse_aispec(aispec: Param, request: ROSpecRequest) -> None:
    count = struct.unpack_from(">H", aispec.body)[0]
    antennas = struct.unpack_from(f">{count}H", aispec.body, 2)
    request.antennas += antennas
    spec = AISpecRequest(antennas)
    request.aispecs.append(spec)
    for part in aispec.children(2 + 2 * count):
        if part.type == 184 and len(part.body) >= 5:  # AISpecStopTrigger
            spec.stop_trigger, spec.duration_ms = struct.unpack_from(">BI", part.body)
            if not request.ai_stop_trigger:
                request.ai_stop_trigger = spec.stop_trigger
            observation = part.find(185, 5)  # TagObservationTrigger
            if observation is not None and len(observation.body) >= 12:
                values = struct.unpack_from(">BBHHHI", observation.body)
                spec.observation, _, spec.number_of_tags = values[:3]
                spec.number_of_attempts, spec.quiet_ms, spec.duration_ms = values[3:]
            gpi = part.find(181, 5)  # GPITriggerValue: port, event, timeout
            if gpi is not None and len(gpi.body) >= 7:
                spec.duration_ms = struct.unpack_from(">I", gpi.body, 3)[0]
        elif part.type == 186:  # InventoryParameterSpec: u16 id, u8 protocol, then antennas
            spec.inventory_parameter_specs += 1
            for config in part.children(3):
                if config.type != 222 or len(config.body) < 2:  # AntennaConfiguration
                    continue
                antenna = struct.unpack_from(">H", config.body)[0]
                for item in config.children(2):
                    if item.type == 224 and len(item.body) >= 6:  # RFTransmitter
                        hop, channel, power = struct.unpack_from(">HHH", item.body)
                        request.tx_power_index[antenna] = power
                        request.hop_table[antenna] = (hop, channel)
                    elif item.type == 330:  # C1G2InventoryCommand: u8 flags, then params
                        _parse_inventory_command(item, antenna, request)


def parse_keepalive_ms(set_reader_config_body: bytes) -> int | None:
    """The KeepaliveSpec interval of a SET_READER_CONFIG (None when absent or disabled)."""
    for param in iter_params(set_reader_config_body[1:]):
        if param.type == 220 and len(param.body) >= 5:
            trigger, interval = struct.unpack_from(">BI", param.body)
            return int(interval) if trigger == 1 else 0
    return None
