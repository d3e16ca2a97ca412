"""Phones as scanners: what the live page's camera mode sends becomes barcode scans.

A phone decodes codes itself (the browser's BarcodeDetector) or sends camera frames to
:meth:`PhoneScans.decode` (ZXing-C++ on the gateway). Each distinct code it sees is one
*scan* with an id the page made, the time it was seen, the device and the operator.
:meth:`PhoneScans.submit` takes them in the order they were made and treats each
exactly as a scanner's line (:class:`~tagsweep.drivers.scanparse.ScanInterpreter` under
the same rules): a location label sets the location context (the phone's own, recorded
with its later scans, and the session's, as a scanner's label does); an asset tag,
serial or GIAI is stored as a scan of the open session and ticked off on the live count.

Never lost, never doubled: the page keeps a scan until an answer names its id, and
sends it again after a dropped connection; the store refuses a second scan with the
same id (:meth:`~tagsweep.daemon.store.Store.write_scan_once`), so a scan whose answer
was lost on the way back is acknowledged again, not counted again. Scans made while no
session is open are *held*: the page keeps them until one opens.
"""

from __future__ import annotations

import asyncio
import io
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from tagsweep.daemon.events import EventKind, GatewayEvent
from tagsweep.daemon.sessions import SessionError
from tagsweep.daemon.store import ScanRecord
from tagsweep.domain import Location, ScanKind, now_us
from tagsweep.drivers.barcode import scan_rules_for
from tagsweep.drivers.scanparse import ScanInterpreter, ScanRejection
from tagsweep.epc import asset_tag_for_giai
from tagsweep.logs import get_logger

if TYPE_CHECKING:
    from tagsweep.daemon.liveview.view import LiveView
    from tagsweep.daemon.supervisor import Gateway

log = get_logger(__name__)

#: Most scans one request may carry, longest code text, largest camera frame.
MAX_BATCH: Final = 200
MAX_TEXT: Final = 4096
MAX_FRAME_BYTES: Final = 4 * 1024 * 1024
MAX_FRAME_PIXELS: Final = 4096 * 4096  # a small file can still claim a huge picture
#: How far a scan's own time may lie in the future (phone clock ahead) before the
#: gateway's time is used instead.
MAX_CLOCK_AHEAD_US: Final = 5_000_000

_ID: Final = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
_NAME: Final = re.compile(r"^[\w .@-]{1,64}$")

#: AIM symbology identifiers that say something the text alone does not: GS1 data
#: (FNC1 first) and EAN/UPC. Other codes go without, as a scanner with AIM off sends.
_MEANINGFUL_AIM: Final = re.compile(r"^\](C1|Q3|Q4|d2|d5|e0|E0|E3|E4|I1)$")

#: BarcodeDetector format names → AIM identifiers for the GS1-free default reading.
_DETECTOR_AIM: Final = {"ean_13": "]E0", "ean_8": "]E4", "upc_a": "]E0", "upc_e": "]E0"}

COUNTED_KINDS: Final = (ScanKind.ASSET_TAG, ScanKind.SERIAL, ScanKind.GIAI)


class PhoneScanError(ValueError):
    """A request the phone endpoints cannot take; the message says what and where."""


@dataclass(slots=True)
class PhoneState:
    device: str
    operator: str
    location: str | None = None
    scans: int = 0
    last_seen: float = 0.0


def _clean_name(value: object, what: str) -> str:
    text = str(value or "").strip()
    if not _NAME.match(text):
        raise PhoneScanError(f"{what} {text[:80]!r}: expected 1-64 letters, digits, ' .@_-'")
    return text


class PhoneScans:
    """The gateway side of camera scanning: decode frames, take scans, answer each."""

    def __init__(self, gateway: Gateway, view: LiveView | None = None) -> None:
        self.gateway = gateway
        self.view = view
        config = gateway.config
        self.interpreter = ScanInterpreter(scan_rules_for(config.scanners, config.locations))
        self.company_prefix = config.engine.giai_company_prefix
        self.tag_format = config.engine.giai_asset_tag_format
        self.phones: dict[str, PhoneState] = {}
        self._lock = asyncio.Lock()  # scans are taken one request at a time, in order
        self._decoding = asyncio.Semaphore(2)  # frames decoded at once (2 cores)

    # -- frames -------------------------------------------------------------------------
    async def decode(self, frame: bytes) -> list[dict[str, str]]:
        """Codes in one camera frame (JPEG, PNG or WebP): ``[{text, format, aim}]``."""
        if not frame:
            raise PhoneScanError("empty frame")
        if len(frame) > MAX_FRAME_BYTES:
            raise PhoneScanError(f"frame of {len(frame)} bytes; at most {MAX_FRAME_BYTES}")
        async with self._decoding:
            return await asyncio.to_thread(decode_frame, frame)

    # -- scans --------------------------------------------------------------------------
    def state(self, device: str) -> PhoneState | None:
        return self.phones.get(device)

    async def submit(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Take a batch ``{device, operator, session_id?, scans: [{id, text, format?,
        aim?, ts_us?}]}``; answer ``{results: [{id, status, …}], location, session_id}``.

        Statuses: ``counted`` (a new scan of an asset), ``location`` (a location label),
        ``unrecognised`` (stored, identifies nothing the count knows), ``duplicate`` (this
        id was taken before), ``rejected`` (not a scan; ``reason`` says why), ``held``
        (no session open: keep it and send it again)."""
        device = _clean_name(body.get("device"), "device")
        operator = _clean_name(body.get("operator"), "operator")
        scans = body.get("scans")
        if not isinstance(scans, list) or len(scans) > MAX_BATCH:
            raise PhoneScanError(f"scans: expected a list of at most {MAX_BATCH} scans")
        wanted_session = body.get("session_id") or None
        async with self._lock:
            phone = self.phones.get(device)
            if phone is None:
                phone = self.phones[device] = PhoneState(device, operator)
                log.info("phone_connected", device=device, operator=operator)
            phone.operator = operator
            phone.last_seen = time.monotonic()
            results = []
            for index, scan in enumerate(scans):
                try:
                    results.append(await self._one(phone, scan, wanted_session))
                except PhoneScanError as exc:
                    scan_id = scan.get("id") if isinstance(scan, Mapping) else None
                    results.append(
                        {"id": scan_id, "status": "rejected", "reason": f"scans[{index}]: {exc}"}
                    )
            counted = sum(1 for r in results if r["status"] in ("counted", "location"))
            if self.view is not None:
                self.view.set_source_state(f"phone:{device}", "phone", "scanning", operator)
                if counted:
                    self.view.count_reads(f"phone:{device}", counted, "phone")
        session = self.gateway.session
        return {
            "results": results,
            "location": phone.location,
            "session_id": session.session_id if session else None,
        }

    async def _one(self, phone: PhoneState, scan: object, wanted_session: object) -> dict[str, Any]:
        if not isinstance(scan, Mapping):
            raise PhoneScanError("expected an object with id and text")
        scan_id = str(scan.get("id") or "")
        if not _ID.match(scan_id):
            raise PhoneScanError(f"id {scan_id[:80]!r}: expected 8-64 letters, digits, '_' or '-'")
        text = scan.get("text")
        if not isinstance(text, str) or not text or len(text) > MAX_TEXT:
            raise PhoneScanError(f"text: expected 1-{MAX_TEXT} characters")
        session = self.gateway.session
        if session is None:
            return {"id": scan_id, "status": "held", "reason": "no count session is open"}
        if wanted_session and wanted_session != session.session_id:
            return {
                "id": scan_id,
                "status": "rejected",
                "reason": f"count session {wanted_session} is not open "
                f"(the open one is {session.session_id})",
            }
        now = now_us()
        ts = scan.get("ts_us")
        ts_us = int(ts) if isinstance(ts, int) and not isinstance(ts, bool) else now
        ts_us = max(session.started_us, min(ts_us, now + MAX_CLOCK_AHEAD_US))
        aim = str(scan.get("aim") or "")
        if not _MEANINGFUL_AIM.match(aim):
            aim = _DETECTOR_AIM.get(str(scan.get("format") or "").lower(), "")
        content = self.interpreter.interpret((aim + text).encode("utf-8"))
        if isinstance(content, ScanRejection):
            log.warning(
                "phone_scan_rejected",
                device=phone.device,
                reason=content.reason.value,
                detail=content.detail,
            )
            return {"id": scan_id, "status": "rejected", "reason": content.detail}
        kind, value = content.kind, content.value
        if kind is ScanKind.GIAI:
            tag = asset_tag_for_giai(value, self.company_prefix, self.tag_format)
            if tag is not None:
                kind, value = ScanKind.ASSET_TAG, tag
        where = phone.location or (
            str(session.location_context) if session.location_context else None
        )
        record = ScanRecord(
            ts_us=ts_us,
            scanner=f"phone:{phone.device}",
            kind=kind.value,
            value=value,
            data=content.data,
            symbology=content.symbology.value,
            session_id=session.session_id,
            location=value if kind is ScanKind.LOCATION else where,
            operator=phone.operator,
            scan_id=scan_id,
        )
        store = self.gateway.store
        if store is None:
            return {"id": scan_id, "status": "held", "reason": "the gateway is starting"}
        if not await store.call(store.write_scan_once, record):
            return {"id": scan_id, "status": "duplicate", "kind": kind.value, "value": value}
        phone.scans += 1
        self.gateway.counters.scans += 1
        if kind is ScanKind.LOCATION:
            return await self._location(phone, scan_id, value, ts_us)
        status = "counted" if kind in COUNTED_KINDS else "unrecognised"
        await self.gateway.emit(
            [
                GatewayEvent(
                    EventKind.SCAN,
                    {
                        "session_id": session.session_id,
                        "scanner": record.scanner,
                        "kind": record.kind,
                        "value": value,
                        "location": where,
                        "operator": phone.operator,
                    },
                    ts_us=ts_us,
                )
            ]
        )
        answer: dict[str, Any] = {
            "id": scan_id,
            "status": status,
            "kind": kind.value,
            "value": value,
            "location": where,
        }
        count = self._live_count(session.session_id)
        if count is not None and status == "counted":
            asset = count.lookup(
                asset_tag=value if kind is ScanKind.ASSET_TAG else None,
                serial=value if kind is ScanKind.SERIAL else None,
            )
            answer["asset"] = asset.to_json() if asset is not None else None
        return answer

    async def _location(
        self, phone: PhoneState, scan_id: str, path: str, ts_us: int
    ) -> dict[str, Any]:
        try:
            path = Location(path).path
            await self.gateway.set_location(path, source=f"phone:{phone.device}", ts_us=ts_us)
        except (SessionError, ValueError) as exc:
            log.warning("location_label_rejected", value=path, error=str(exc))
            return {"id": scan_id, "status": "rejected", "reason": str(exc)}
        phone.location = path
        return {"id": scan_id, "status": "location", "kind": "location", "value": path}

    def _live_count(self, session_id: str) -> Any:
        if self.view is None:
            return None
        try:
            return self.view.get(session_id)
        except KeyError:
            return None

    def devices(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        return [
            {
                "device": p.device,
                "operator": p.operator,
                "location": p.location,
                "scans": p.scans,
                "idle_s": round(now - p.last_seen, 1),
            }
            for p in self.phones.values()
        ]


def decode_frame(frame: bytes) -> list[dict[str, str]]:
    """Every code ZXing-C++ finds in an encoded image, once each, in reading order."""
    import zxingcpp
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(frame)) as img:
            width, height = img.size
            if width * height > MAX_FRAME_PIXELS:
                raise PhoneScanError(
                    f"frame of {width}x{height} pixels; at most {MAX_FRAME_PIXELS} pixels"
                )
            img.load()
            gray = img.convert("L")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise PhoneScanError(f"frame is not an image (JPEG, PNG or WebP): {exc}") from None
    seen: set[str] = set()
    out: list[dict[str, str]] = []
    for code in zxingcpp.read_barcodes(gray):
        if not code.valid or not code.text or code.text in seen:
            continue
        seen.add(code.text)
        out.append(
            {"text": code.text, "format": code.format.name, "aim": code.symbology_identifier}
        )
    return out
