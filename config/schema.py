"""Typed configuration schema of the gateway daemon (one TOML file).

Every model forbids unknown keys: a typo in a configuration must be an error, never a
silently ignored setting. Validation messages say what was expected; the loader adds the
file and the key path (``readers[1].url``).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from tagsweep.config.engine import EngineSection


class Section(BaseModel):
    """Base of every configuration section: strict about keys, immutable once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


def _location_path(value: str) -> str:
    parts = [p.strip() for p in value.split("/")]
    if not value or any(not p for p in parts):
        raise ValueError("expected a location path like 'DC1/Room 302/Rack A04'")
    return "/".join(parts)


LocationPath = Annotated[str, Field(min_length=1)]
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def _check_name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError("expected 1-64 letters, digits, '_', '.' or '-' (no spaces)")
    return value


Name = Annotated[str, AfterValidator(_check_name)]


def _check_listen(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("expected HOST:PORT, e.g. '127.0.0.1:9464'")
    return value


def _check_regex(value: str | None) -> str | None:
    if value is not None:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regular expression: {exc}") from None
    return value


class GatewaySection(Section):
    id: Name = Field(default_factory=lambda: re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname()))
    site: Name = "SITE"


class StoreSection(Section):
    path: Path = Path("/var/lib/tagsweep/gateway.duckdb")
    session_dir: Path = Path("/var/lib/tagsweep/sessions")
    #: Ed25519 key the gateway signs its session manifests with (created on first use,
    #: mode 0600); default: ``session-signing.key`` next to the store.
    signing_key: Path | None = None
    keep_raw_reads: bool = False
    raw_read_retention_hours: float = Field(default=24.0, gt=0)

    @property
    def signing_key_path(self) -> Path:
        return self.signing_key or self.path.with_name("session-signing.key")


class DedupSection(Section):
    window_s: float = Field(default=2.0, gt=0, le=3600)
    flush_interval_s: float = Field(default=0.5, gt=0, le=60)


class PortalSection(Section):
    inside_antenna: int = Field(ge=1, le=65535)
    outside_antenna: int = Field(ge=1, le=65535)
    zone: LocationPath

    _zone = field_validator("zone")(_location_path)

    @model_validator(mode="after")
    def _distinct_antennas(self) -> PortalSection:
        if self.inside_antenna == self.outside_antenna:
            raise ValueError("inside_antenna and outside_antenna must differ")
        return self


class ReaderSection(Section):
    name: Name
    url: str
    role: Literal["handheld", "portal", "fixed"] = "handheld"
    location: LocationPath | None = None
    portal: PortalSection | None = None
    keepalive_s: float = Field(default=5.0, gt=0, le=600)
    watchdog_intervals: int = Field(default=3, ge=1, le=100)
    tx_power_dbm: float | None = Field(default=None, ge=0, le=33)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if not parts.scheme or not (parts.netloc or parts.path):
            raise ValueError("expected a reader URL like 'llrp://10.0.0.5:5084?antennas=1,2'")
        return value

    _location = field_validator("location")(lambda v: None if v is None else _location_path(v))

    @model_validator(mode="after")
    def _role_needs(self) -> ReaderSection:
        if self.role == "portal" and self.portal is None:
            raise ValueError("a portal reader needs a [readers.portal] table")
        if self.role != "portal" and self.portal is not None:
            raise ValueError("[readers.portal] is only allowed with role = 'portal'")
        if self.role == "fixed" and self.location is None:
            raise ValueError("a fixed reader needs 'location'")
        return self


class ScannerSection(Section):
    name: Name
    url: str
    terminator: str = Field(default="CR", min_length=1, max_length=8)
    encoding: str = "utf-8"
    location: LocationPath | None = None
    location_prefix: str | None = "LOC:"
    location_pattern: str | None = None
    asset_tag_pattern: str | None = r"^[A-Z]{2,5}-?\d{3,8}$"
    serial_pattern: str | None = None
    max_line_bytes: int = Field(default=4096, ge=64, le=1_048_576)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if "://" not in value:
            raise ValueError(
                "expected a scanner URL like 'serial:///dev/ttyACM0?baud=9600' "
                "or 'socket://127.0.0.1:7000'"
            )
        return value

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, value: str) -> str:
        import codecs

        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"unknown text encoding {value!r}") from None
        return value

    _regexes = field_validator("location_pattern", "asset_tag_pattern", "serial_pattern")(
        _check_regex
    )
    _location = field_validator("location")(lambda v: None if v is None else _location_path(v))


class LocationSection(Section):
    path: LocationPath
    label: str | None = None  # text of the location barcode label
    gln: str | None = Field(default=None, pattern=r"^\d{13}$")  # GS1 AI 414

    _path = field_validator("path")(_location_path)


class TlsSection(Section):
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure: bool = False  # skip hostname verification (test brokers only)

    @model_validator(mode="after")
    def _pair(self) -> TlsSection:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        return self


class MqttSection(Section):
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    client_id: str | None = None
    topic_prefix: str = Field(default="tagsweep", pattern=r"^[^#+\s]+$")
    username: str | None = None
    password_env: str | None = None
    password_file: Path | None = None
    tls: TlsSection | None = None
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    retain_status: bool = True
    outbox_max_rows: int = Field(default=1_000_000, ge=1000)
    outbox_retention_days: float = Field(default=7.0, gt=0)
    # Filled by the loader from password_env / password_file / TAGSWEEP_MQTT_PASSWORD;
    # never read from the file itself (see loader).
    password: SecretStr | None = Field(default=None, exclude=True)


class MetricsSection(Section):
    enabled: bool = True
    listen: str = "127.0.0.1:9464"

    _listen = field_validator("listen")(_check_listen)


class ControlSection(Section):
    socket: Path = Path("/run/tagsweep/control.sock")
    mode: Literal[0o600, 0o660] = 0o600


class WebTlsSection(Section):
    """HTTPS for the live page: a phone's browser opens its camera only on a secure page
    (``tagsweep web cert`` makes a self-signed pair)."""

    cert_file: Path
    key_file: Path


class WebSection(Section):
    enabled: bool = False
    listen: str = "127.0.0.1:8080"
    tls: WebTlsSection | None = None
    token_env: str | None = None
    token_file: Path | None = None
    token: SecretStr | None = Field(default=None, exclude=True)
    #: Serve beyond loopback without a token (anyone who can reach the port sees the
    #: count); ``config check`` warns about it.
    insecure: bool = False

    _listen = field_validator("listen")(_check_listen)

    @property
    def loopback(self) -> bool:
        """Is the live view reachable from this host only?"""
        return is_loopback_listen(self.listen)


def is_loopback_listen(listen: str) -> bool:
    """``HOST:PORT`` names a loopback address (127.0.0.0/8, ::1, localhost)."""
    host = listen.rpartition(":")[0].strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


class LoggingSection(Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    json_output: bool | None = Field(default=None, alias="json")


class TagsweepConfig(Section):
    """The whole configuration file."""

    gateway: GatewaySection = GatewaySection()
    logging: LoggingSection = LoggingSection()
    store: StoreSection = StoreSection()
    dedup: DedupSection = DedupSection()
    readers: list[ReaderSection] = []
    scanners: list[ScannerSection] = []
    locations: list[LocationSection] = []
    mqtt: MqttSection = MqttSection()
    metrics: MetricsSection = MetricsSection()
    control: ControlSection = ControlSection()
    web: WebSection = WebSection()
    engine: EngineSection = EngineSection()

    @model_validator(mode="after")
    def _unique_names(self) -> TagsweepConfig:
        seen: dict[str, str] = {}
        named = [("readers", i, r.name) for i, r in enumerate(self.readers)]
        named += [("scanners", i, s.name) for i, s in enumerate(self.scanners)]
        for kind, i, name in named:
            if name in seen:
                raise ValueError(f"{kind}[{i}].name {name!r} is already used by {seen[name]}")
            seen[name] = f"{kind}[{i}]"
        paths: set[str] = set()
        labels: set[str] = set()
        for loc in self.locations:
            if loc.path in paths:
                raise ValueError(f"location {loc.path!r} is listed twice")
            paths.add(loc.path)
            if loc.label is not None:
                if loc.label in labels:
                    raise ValueError(f"location label {loc.label!r} is used twice")
                labels.add(loc.label)
        return self
