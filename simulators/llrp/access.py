"""Tags that can be written, and the AccessSpecs that write them (LLRP 1.0.1 section 12,
C1G2 OpSpecs 16.3.1.3).

A :class:`TagField` is what the simulated antennas see when a test or a commissioning
bench needs tags with memory: each :class:`SimTag` has an EPC, a TID, an access password
and a lock state. While an AccessSpec is enabled and its ROSpec inventories, every tag
its C1G2TagSpec matches has the OpSpecs run on it, once per operation count, and the
results ride in that tag's TagReportData, as a reader reports them:

* C1G2Read of the TID bank returns the TID words;
* C1G2Write to the EPC bank (from word 2) changes the EPC the tag answers with, to the
  reserved bank (words 2-3) sets its access password;
* a wrong access password gets "no response from tag" (a Gen2 tag does not enter the
  secured state), a write-locked bank "tag memory locked" unless the right non-zero
  password was given (pwd-write);
* C1G2Lock with the EPC data field locks the EPC bank.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import numpy as np

from tagsweep.domain import ReadBatch, empty_reads, now_us
from tagsweep.simulators.llrp.encoder import Param, ParameterError, iter_params, tlv
from tagsweep.simulators.llrp.sources import TagSource

WRITE_SUCCESS, WRITE_LOCKED, WRITE_NO_RESPONSE = 0, 2, 5
READ_SUCCESS = 0
LOCK_SUCCESS, LOCK_NO_RESPONSE = 0, 3


@dataclass(slots=True)
class SimTag:
    epc: str
    tid: str = "E2801190200000000000000A"
    access_password: int = 0
    epc_locked: bool = False
    antenna: int = 1

    def secured(self, password: int) -> bool:
        """Gen2 access: a tag without a password is secured at once; else it needs it."""
        return self.access_password in (0, password)


@dataclass(slots=True)
class TagField:
    """Tags in front of the antennas; the simulator reads them round after round."""

    tags: list[SimTag] = field(default_factory=list)
    interval_s: float = 0.02

    def source(self) -> TagSource:
        async def rounds() -> AsyncIterator[ReadBatch]:
            while True:
                tags = list(self.tags)
                if tags:
                    yield _reads(tags)
                await asyncio.sleep(self.interval_s)

        return rounds

    def by_epc(self, epc: str) -> SimTag | None:
        return next((t for t in self.tags if t.epc.upper() == epc.upper()), None)


def _reads(tags: list[SimTag]) -> ReadBatch:
    reads = empty_reads(len(tags))
    reads["epc"] = [t.epc.upper().encode() for t in tags]
    reads["antenna"] = [t.antenna for t in tags]
    reads["rssi"] = -52.0
    reads["first_seen_us"] = reads["last_seen_us"] = now_us()
    reads["seen_count"] = 1
    return reads


@dataclass(slots=True)
class OpSpec:
    kind: int  # 341 Read, 342 Write, 344 Lock
    opspec_id: int
    password: int
    bank: int = 0
    pointer: int = 0
    count: int = 0
    data: bytes = b""
    lock_fields: tuple[tuple[int, int], ...] = ()  # (privilege, data field)


@dataclass(slots=True)
class AccessSpecRequest:
    accessspec_id: int
    rospec_id: int
    operations: int  # 0: unlimited; else deleted after this many
    target: tuple[int, int, bytes, bytes] | None  # bank, bit pointer, mask, data
    ops: list[OpSpec]
    enabled: bool = False
    done: int = 0


def parse_add_accessspec(body: bytes) -> AccessSpecRequest:
    spec = next((p for p in iter_params(body) if p.type == 207), None)
    if spec is None or len(spec.body) < 12:
        raise ParameterError("ADD_ACCESSSPEC has no AccessSpec parameter")
    accessspec_id, _antenna, _protocol, _state, rospec_id = struct.unpack_from(">IHBBI", spec.body)
    request = AccessSpecRequest(accessspec_id, rospec_id, 0, None, [])
    for part in spec.children(12):
        if part.type == 208 and len(part.body) >= 3:  # AccessSpecStopTrigger
            kind, count = struct.unpack_from(">BH", part.body)
            request.operations = count if kind == 1 else 0
        elif part.type == 209:  # AccessCommand
            for item in part.children():
                if item.type == 338:  # C1G2TagSpec: the first target tag decides
                    target = item.find(339)
                    if target is not None:
                        request.target = _target(target)
                elif item.type in (341, 342, 344):
                    request.ops.append(_opspec(item))
    return request


def _target(param: Param) -> tuple[int, int, bytes, bytes]:
    flags, pointer, mask_bits = struct.unpack_from(">BHH", param.body)
    mask = param.body[5 : 5 + (mask_bits + 7) // 8]
    at = 5 + len(mask)
    data_bits = struct.unpack_from(">H", param.body, at)[0]
    data = param.body[at + 2 : at + 2 + (data_bits + 7) // 8]
    return flags >> 6, pointer, mask, data


def _opspec(param: Param) -> OpSpec:
    if param.type == 344:  # C1G2Lock: id, password, C1G2LockPayloads
        opspec_id, password = struct.unpack_from(">HI", param.body)
        fields = tuple(
            (p.body[0], p.body[1]) for p in param.children(6) if p.type == 345 and len(p.body) >= 2
        )
        return OpSpec(344, opspec_id, password, lock_fields=fields)
    opspec_id, password, bank, pointer, count = struct.unpack_from(">HIBHH", param.body)
    data = param.body[11 : 11 + 2 * count] if param.type == 342 else b""
    return OpSpec(param.type, opspec_id, password, bank >> 6, pointer, count, data)


def matches(request: AccessSpecRequest, tag: SimTag) -> bool:
    """The C1G2TargetTag test on the EPC bank (bit 32 on is the EPC); other banks and no
    target match every tag."""
    if request.target is None:
        return True
    bank, pointer, mask, data = request.target
    if bank != 1 or pointer < 32 or (pointer - 32) % 8:
        return True
    epc = bytes.fromhex(tag.epc)[(pointer - 32) // 8 :]
    if len(epc) < len(data):
        return False
    got = np.frombuffer(epc[: len(data)], dtype=np.uint8)
    want = np.frombuffer(data, dtype=np.uint8)
    bits = np.frombuffer(mask.ljust(len(data), b"\xff")[: len(data)], dtype=np.uint8)
    return bool(((got ^ want) & bits == 0).all())


def run_ops(request: AccessSpecRequest, tag: SimTag) -> bytes:
    """Run the OpSpecs on ``tag``; the OpSpecResult parameters for its TagReportData."""
    out = b""
    for op in request.ops:
        if op.kind == 341:  # Read
            tid = bytes.fromhex(tag.tid)
            words = tid[2 * op.pointer :][: 2 * op.count] if op.count else tid[2 * op.pointer :]
            if op.bank == 2:
                body = struct.pack(">BHH", READ_SUCCESS, op.opspec_id, len(words) // 2) + words
            else:
                body = struct.pack(">BHH", 1, op.opspec_id, 0)  # only the TID is modelled
            out += tlv(349, body)
        elif op.kind == 342:  # Write
            result, written = _write(tag, op)
            out += tlv(350, struct.pack(">BHH", result, op.opspec_id, written))
        else:  # Lock
            if not tag.secured(op.password):
                result = LOCK_NO_RESPONSE
            else:
                result = LOCK_SUCCESS
                for privilege, data_field in op.lock_fields:
                    if data_field == 2:  # EPC memory
                        tag.epc_locked = privilege in (0, 1)
            out += tlv(352, struct.pack(">BH", result, op.opspec_id))
    return out


def _write(tag: SimTag, op: OpSpec) -> tuple[int, int]:
    if not tag.secured(op.password):
        return WRITE_NO_RESPONSE, 0
    words = len(op.data) // 2
    if op.bank == 1 and op.pointer >= 2:
        if tag.epc_locked and (tag.access_password == 0 or op.password != tag.access_password):
            return WRITE_LOCKED, 0
        epc = bytearray(bytes.fromhex(tag.epc))
        start = 2 * (op.pointer - 2)
        epc[start : start + len(op.data)] = op.data
        tag.epc = epc.hex().upper()
        return WRITE_SUCCESS, words
    if op.bank == 0 and op.pointer == 2 and words == 2:  # the access password
        tag.access_password = struct.unpack(">I", op.data)[0]
        return WRITE_SUCCESS, words
    return 1, 0  # memory overrun: nothing else is modelled


def apply_access(
    specs: dict[int, AccessSpecRequest], tag_field: TagField, batch: ReadBatch, rospec_id: int
) -> list[tuple[int, bytes]]:
    """Run the enabled AccessSpecs of ``rospec_id`` on the tags of ``batch`` (each tag
    once per batch); (row, OpSpecResults) for the rows that were accessed. An AccessSpec
    whose operation count is reached is deleted, as LLRP says."""
    accessed: list[tuple[int, bytes]] = []
    seen: set[str] = set()
    for row, epc in enumerate(batch["epc"].tolist()):
        text = epc.decode()
        if text in seen:
            continue
        seen.add(text)
        tag = tag_field.by_epc(text)
        if tag is None:
            continue
        for spec in list(specs.values()):
            if not spec.enabled or spec.rospec_id not in (0, rospec_id):
                continue
            if not matches(spec, tag):
                continue
            accessed.append((row, run_ops(spec, tag)))
            spec.done += 1
            if spec.operations and spec.done >= spec.operations:
                del specs[spec.accessspec_id]
            break
    return accessed
