"""The LLRP driver's options, validated, and what they configure: sllurp's reader
configuration, the TLS context and the reader certificate's pin.

Options (URL query, or the ``options`` mapping from the configuration; the URL wins):
``antennas``, ``keepalive_s``, ``watchdog_intervals``, ``tx_power`` (dBm; default the
reader's maximum), ``report_n`` (reads per report), ``session``, ``tag_population``,
``mode_identifier``, ``search_mode`` (Impinj target: 1 single, 2 dual, 3 single with
suppression), ``impinj`` (request Impinj phase/RSSI/Doppler), ``rospec_id``,
``connect_timeout_s``, ``max_report_bytes``, ``report_interval_s`` (GET_REPORT this
often, so reads wait at most that long for N to fill; default 1), ``max_clock_skew_s``
(a reader whose UTC clock is further off re-anchors its stamps to the receive time, per
connection; default 5), ``validate`` (cross-check every report with
sllurp) and ``decoder`` (``fast`` or ``sllurp``).
"""

from __future__ import annotations

import hashlib
import ssl
from dataclasses import dataclass
from typing import Any, ClassVar

from sllurp.llrp import LLRPReaderConfig

from tagsweep.drivers.base import Driver, DriverConfigError

DEFAULT_PORT = 5084
DEFAULT_TLS_PORT = 5085  # LLRP 1.1 section 18.1: LLRP over TLS


@dataclass(frozen=True, slots=True)
class LlrpSettings:
    """Validated driver options."""

    host: str
    port: int
    antennas: tuple[int, ...] = (1,)
    keepalive_s: float = 5.0
    watchdog_intervals: int = 3
    tx_power_dbm: float | None = None
    report_n: int = 100
    session: int = 2
    tag_population: int = 4
    mode_identifier: int | None = None
    search_mode: int | None = None  # Impinj InventorySearchMode (1 single, 2 dual target…)
    impinj: bool = False
    rospec_id: int = 1
    connect_timeout_s: float = 10.0
    max_report_bytes: int = 8 << 20
    max_pending_reads: int = 500_000
    validate: bool = False
    decoder: str = "fast"
    #: a reader's UTC stamps further than this from the receive time are re-anchored
    max_clock_skew_s: float = 5.0
    #: ask for unreported reads (GET_REPORT) this often: bounds how late a read arrives
    report_interval_s: float = 1.0
    tls: bool = False
    tls_fingerprint: str = ""  # SHA-256 of the reader's certificate, hex
    tls_ca: str = ""  # or: verify the reader's certificate against this CA file

    _KEYS: ClassVar[frozenset[str]] = frozenset(
        {
            "antennas", "keepalive_s", "watchdog_intervals", "tx_power", "tx_power_dbm",
            "report_n", "session", "tag_population", "mode_identifier", "search_mode", "impinj",
            "rospec_id", "connect_timeout_s", "max_report_bytes", "max_pending_reads",
            "validate", "decoder", "max_clock_skew_s", "report_interval_s", "tls_fingerprint",
            "tls_ca",
        }
    )  # fmt: skip

    @classmethod
    def parse(cls, driver: Driver) -> LlrpSettings:
        url = driver.url
        raw: dict[str, Any] = {k: v for k, v in driver.options.items() if v is not None}
        raw.update(url.query)
        unknown = sorted(set(raw) - cls._KEYS)
        if unknown:
            raise DriverConfigError(
                f"{url.raw}: unknown LLRP option(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(cls._KEYS))}"
            )
        if not url.host:
            raise DriverConfigError(f"{url.raw}: no reader host (llrp://host[:port])")

        def number(key: str, kind: type[int] | type[float], lo: float, hi: float) -> Any:
            value = raw[key]
            try:
                parsed = kind(value)
            except (TypeError, ValueError):
                raise DriverConfigError(
                    f"{url.raw}: option {key}={value!r} is not {kind.__name__}"
                ) from None
            if not lo <= parsed <= hi:
                raise DriverConfigError(
                    f"{url.raw}: option {key}={value!r} must be between {lo} and {hi}"
                )
            return parsed

        def flag(key: str) -> bool:
            value = str(raw[key]).lower()
            if value not in {"1", "0", "true", "false", "yes", "no", "on", "off"}:
                raise DriverConfigError(f"{url.raw}: option {key}={raw[key]!r} is not a boolean")
            return value in {"1", "true", "yes", "on"}

        kwargs: dict[str, Any] = {}
        if "antennas" in raw:
            value = raw["antennas"]
            items = value if isinstance(value, list | tuple) else str(value).split(",")
            try:
                antennas = tuple(int(a) for a in items if str(a).strip())
            except ValueError:
                raise DriverConfigError(
                    f"{url.raw}: option antennas={value!r} must be comma-separated integers"
                ) from None
            if not antennas or not all(1 <= a <= 65535 for a in antennas):
                raise DriverConfigError(f"{url.raw}: antennas must be LLRP ids 1..65535")
            kwargs["antennas"] = antennas
        for key, kind, lo, hi in (
            ("keepalive_s", float, 0.01, 600),
            ("watchdog_intervals", int, 1, 100),
            ("report_n", int, 1, 65535),
            ("session", int, 0, 3),
            ("tag_population", int, 1, 65535),
            ("mode_identifier", int, 0, 2**32 - 1),
            ("search_mode", int, 0, 6),
            ("rospec_id", int, 1, 2**32 - 1),
            ("connect_timeout_s", float, 0.1, 300),
            ("max_report_bytes", int, 1024, 1 << 30),
            ("max_pending_reads", int, 1000, 1 << 26),
            ("max_clock_skew_s", float, 0.5, 10 * 365 * 86400),
            ("report_interval_s", float, 0.05, 3600),
        ):
            if key in raw:
                kwargs[key] = number(key, kind, lo, hi)
        for key in ("tx_power", "tx_power_dbm"):
            if key in raw:
                kwargs["tx_power_dbm"] = number(key, float, 0, 40)
        for key in ("impinj", "validate"):
            if key in raw:
                kwargs[key] = flag(key)
        tls = url.scheme == "llrps"
        if tls:
            kwargs["tls"] = True
            fingerprint = str(raw.get("tls_fingerprint", "")).replace(":", "").lower()
            if fingerprint and (
                len(fingerprint) != 64 or set(fingerprint) - set("0123456789abcdef")
            ):
                raise DriverConfigError(
                    f"{url.raw}: tls_fingerprint must be the certificate's SHA-256 "
                    "(64 hex digits, colons allowed)"
                )
            kwargs["tls_fingerprint"] = fingerprint
            kwargs["tls_ca"] = str(raw.get("tls_ca", ""))
            if not fingerprint and not kwargs["tls_ca"]:
                raise DriverConfigError(
                    f"{url.raw}: llrps:// needs tls_fingerprint=SHA256 (pin the reader's "
                    "self-signed certificate) or tls_ca=FILE; an unverified reader is refused"
                )
        elif "tls_fingerprint" in raw or "tls_ca" in raw:
            raise DriverConfigError(f"{url.raw}: tls_fingerprint/tls_ca need llrps://")
        if "decoder" in raw:
            if raw["decoder"] not in ("fast", "sllurp"):
                raise DriverConfigError(f"{url.raw}: decoder must be 'fast' or 'sllurp'")
            kwargs["decoder"] = raw["decoder"]
        return cls(url.host, url.port or (DEFAULT_TLS_PORT if tls else DEFAULT_PORT), **kwargs)

    def tls_context(self) -> ssl.SSLContext:
        """TLS 1.2 or later; the CA file verifies the chain and the host name, a pinned
        fingerprint replaces both (readers ship self-signed certificates)."""
        context = ssl.create_default_context(cafile=self.tls_ca or None)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if not self.tls_ca:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE  # the fingerprint check below decides
        return context

    def sllurp_config(self) -> LLRPReaderConfig:
        config: dict[str, Any] = {
            "antennas": list(self.antennas),
            "tx_power": 0,  # index 0 = the reader's maximum, unless tx_power_dbm is set
            "keepalive_interval": max(1, round(self.keepalive_s * 1000)),
            "report_every_n_tags": None,
            "session": self.session,
            "tag_population": self.tag_population,
            "mode_identifier": self.mode_identifier,
            "reset_on_connect": True,
            "start_inventory": True,
            "reconnect": False,
            "tag_content_selector": {
                "EnableROSpecID": False,
                "EnableSpecIndex": False,
                "EnableInventoryParameterSpecID": False,
                "EnableAntennaID": True,
                "EnableChannelIndex": False,
                "EnablePeakRSSI": True,
                "EnableFirstSeenTimestamp": True,
                "EnableLastSeenTimestamp": True,
                "EnableTagSeenCount": True,
                "EnableAccessSpecID": False,
            },
        }
        if self.tx_power_dbm is not None:
            config["tx_power_dbm"] = float(self.tx_power_dbm)
        if self.search_mode is not None:
            config["impinj_search_mode"] = self.search_mode
        if self.impinj:
            config["impinj_tag_content_selector"] = {
                "EnableRFPhaseAngle": True,
                "EnablePeakRSSI": True,
                "EnableRFDopplerFrequency": True,
            }
        return LLRPReaderConfig(config)


def verify_fingerprint(sock: ssl.SSLSocket, settings: LlrpSettings) -> None:
    """Raise OSError unless the reader's certificate is the pinned one (when pinned)."""
    if not settings.tls_fingerprint:
        return
    seen = hashlib.sha256(sock.getpeercert(binary_form=True) or b"").hexdigest()
    if seen != settings.tls_fingerprint:
        raise OSError(
            f"the reader's certificate has SHA-256 {seen}, not the pinned "
            f"{settings.tls_fingerprint}: refusing the connection"
        )
