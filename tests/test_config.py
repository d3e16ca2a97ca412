"""Configuration validation: examples load, every invalid config names its key path,
secrets never leak into messages or logs."""

from __future__ import annotations

from pathlib import Path

import pytest
import structlog
from typer.testing import CliRunner

from tagsweep.cli import app
from tagsweep.config import ConfigError, load_config, parse_config
from tagsweep.config.loader import MQTT_PASSWORD_ENV, key_path

EXAMPLES = sorted((Path(__file__).parents[1] / "config" / "examples").glob("*.toml"))
EXAMPLE_ENV = {"HANDHELD_MQTT_PASSWORD": "example-secret", "PORTAL_MQTT_PASSWORD": "x"}


@pytest.fixture
def example_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in EXAMPLE_ENV.items():
        monkeypatch.setenv(key, value)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tagsweep.toml"
    path.write_text(text)
    return path


def test_there_are_three_examples() -> None:
    assert {p.stem for p in EXAMPLES} >= {"handheld", "portal", "engine"}


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_examples_load(example: Path, example_env: None) -> None:
    config = load_config(example)
    assert config.gateway.site == "DC1"


def test_handheld_example_contents(example_env: None) -> None:
    config = load_config(next(p for p in EXAMPLES if p.stem == "handheld"))
    assert [r.name for r in config.readers] == ["handheld"]
    assert config.scanners[0].terminator == "CR"
    assert config.mqtt.password is not None
    assert config.mqtt.password.get_secret_value() == "example-secret"
    assert config.control.mode == 0o660


def test_portal_example_has_portal(example_env: None) -> None:
    config = load_config(next(p for p in EXAMPLES if p.stem == "portal"))
    portal = config.readers[0].portal
    assert portal is not None
    assert (portal.inside_antenna, portal.outside_antenna, portal.zone) == (1, 2, "DC1/Storage 1")


def test_defaults_are_local_and_safe() -> None:
    config = parse_config({})
    assert config.metrics.listen.startswith("127.0.0.1:")
    assert config.web.listen.startswith("127.0.0.1:")
    assert config.web.enabled is False
    assert config.mqtt.enabled is False
    assert config.control.mode == 0o600


INVALID: list[tuple[str, str, str]] = [
    # (toml, expected key path, fragment of the message)
    ("[gatewy]\nsite='DC1'\n", "gatewy", "unknown key"),
    ("[gateway]\nsite='DC 1'\n", "gateway.site", "no spaces"),
    ("[[readers]]\nname='r'\nurl='llrp://h'\nrole='portl'\n", "readers[0].role", "'handheld'"),
    ("[[readers]]\nname='r'\n", "readers[0].url", "required"),
    ("[[readers]]\nname='r'\nurl='nourl'\n", "readers[0].url", "reader URL"),
    (
        "[[readers]]\nname='a'\nurl='llrp://h'\n[[readers]]\nname='b'\nurl='llrp://h'\nkeepalve_s=3\n",
        "readers[1].keepalve_s",
        "unknown key",
    ),
    ("[[readers]]\nname='r'\nurl='llrp://h'\nrole='portal'\n", "readers[0]", "[readers.portal]"),
    (
        "[[readers]]\nname='r'\nurl='llrp://h'\nrole='portal'\n[readers.portal]\n"
        "inside_antenna=1\noutside_antenna=1\nzone='DC1/Door'\n",
        "readers[0].portal",
        "must differ",
    ),
    ("[[readers]]\nname='r'\nurl='llrp://h'\nrole='fixed'\n", "readers[0]", "needs 'location'"),
    (
        "[[readers]]\nname='r'\nurl='llrp://h'\nkeepalive_s=0\n",
        "readers[0].keepalive_s",
        "greater than 0",
    ),
    ("[mqtt]\nport=70000\n", "mqtt.port", "less than or equal to 65535"),
    ("[mqtt]\nkeepalive_s=1\n", "mqtt.keepalive_s", "greater than or equal to 5"),
    ("[mqtt]\npassword='hunter2'\n", "mqtt.password", "not accepted inline"),
    ("[mqtt.tls]\ncert_file='/c.pem'\n", "mqtt.tls", "go together"),
    ("[metrics]\nlisten='9464'\n", "metrics.listen", "HOST:PORT"),
    ("[dedup]\nwindow_s=-1\n", "dedup.window_s", "greater than 0"),
    ("[[scanners]]\nname='s'\nurl='/dev/ttyACM0'\n", "scanners[0].url", "scanner URL"),
    (
        "[[scanners]]\nname='s'\nurl='socket://h:1'\nencoding='klingon'\n",
        "scanners[0].encoding",
        "unknown text encoding",
    ),
    (
        "[[scanners]]\nname='s'\nurl='socket://h:1'\nlocation_pattern='(('\n",
        "scanners[0].location_pattern",
        "invalid regular expression",
    ),
    ("[[locations]]\npath='DC1//Rack'\n", "locations[0].path", "location path"),
    ("[[locations]]\npath='DC1'\ngln='12'\n", "locations[0].gln", "pattern"),
    ("[control]\nmode=0o644\n", "control.mode", "384 or 432"),
    ("[engine]\nepc_scheme='rot13'\n", "engine.epc_scheme", "pattern"),
    ("[store]\nkeep_raw_reads='sometimes'\n", "store.keep_raw_reads", "valid boolean"),
]


@pytest.mark.parametrize(("text", "path", "fragment"), INVALID, ids=[i[1] for i in INVALID])
def test_invalid_config_names_key_path(tmp_path: Path, text: str, path: str, fragment: str) -> None:
    file = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(file)
    problems = info.value.problems
    matching = [p for p in problems if p.key_path == path]
    assert matching, f"no problem at {path}: {[str(p) for p in problems]}"
    assert fragment in matching[0].message
    assert matching[0].file == str(file)
    assert str(file) in str(info.value)


def test_distinct_invalid_cases() -> None:
    assert len({path for _, path, _ in INVALID}) >= 15


def test_every_error_is_reported_at_once(tmp_path: Path) -> None:
    file = write(tmp_path, "[mqtt]\nport=0\nkeepalive_s=1\n[dedup]\nwindow_s=0\n[typo]\n")
    with pytest.raises(ConfigError) as info:
        load_config(file)
    assert {p.key_path for p in info.value.problems} == {
        "mqtt.port",
        "mqtt.keepalive_s",
        "dedup.window_s",
        "typo",
    }


def test_error_lines_point_at_the_key(tmp_path: Path) -> None:
    file = write(tmp_path, "[gateway]\nsite='DC1'\n\n[mqtt]\nenabled=true\nport=0\n")
    with pytest.raises(ConfigError) as info:
        load_config(file)
    assert info.value.problems[0].line == 6


def test_toml_syntax_error_has_line(tmp_path: Path) -> None:
    file = write(tmp_path, "[gateway]\nsite = = 'DC1'\n")
    with pytest.raises(ConfigError) as info:
        load_config(file)
    assert info.value.problems[0].line == 2
    assert "not valid TOML" in info.value.problems[0].message


def test_duplicate_reader_names(tmp_path: Path) -> None:
    file = write(
        tmp_path,
        "[[readers]]\nname='a'\nurl='llrp://h'\n[[scanners]]\nname='a'\nurl='socket://h:1'\n",
    )
    with pytest.raises(ConfigError, match="already used by readers\\[0\\]"):
        load_config(file)


def test_key_path_rendering() -> None:
    assert key_path(("readers", 1, "url")) == "readers[1].url"
    assert key_path(("mqtt", "tls", "ca_file")) == "mqtt.tls.ca_file"


# -- secrets --------------------------------------------------------------------------


def test_password_from_file_with_tight_mode(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("file-secret\n")
    secret.chmod(0o600)
    config = load_config(write(tmp_path, "[mqtt]\nenabled=true\npassword_file='pw'\n"))
    assert config.mqtt.password is not None
    assert config.mqtt.password.get_secret_value() == "file-secret"
    assert "file-secret" not in repr(config)
    assert "file-secret" not in config.model_dump_json()


def test_password_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("loose-secret")
    secret.chmod(0o644)
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "[mqtt]\npassword_file='pw'\n"))
    assert "chmod 600" in str(info.value)
    assert "loose-secret" not in str(info.value)


def test_password_env_missing_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOPE_PW", raising=False)
    with pytest.raises(ConfigError, match="NOPE_PW is not set"):
        load_config(write(tmp_path, "[mqtt]\npassword_env='NOPE_PW'\n"))


def test_global_env_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MQTT_PASSWORD_ENV, "from-env")
    config = load_config(write(tmp_path, "[mqtt]\nenabled=true\n"))
    assert config.mqtt.password is not None
    assert config.mqtt.password.get_secret_value() == "from-env"


def test_inline_secret_is_not_echoed(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "[mqtt]\npassword='hunter2-inline'\n"))
    assert "hunter2-inline" not in str(info.value)


def test_config_check_never_prints_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_PW", "cli-secret-value")
    file = write(tmp_path, "[mqtt]\nenabled=true\nusername='u'\npassword_env='MY_PW'\n")
    with structlog.testing.capture_logs() as logs:
        result = CliRunner().invoke(app, ["config", "check", str(file)])
    assert result.exit_code == 0, result.output
    assert "OK" in result.output
    assert "password set" in result.output
    assert "cli-secret-value" not in result.output
    assert "cli-secret-value" not in repr(logs)


def test_config_check_reports_errors_with_exit_code(tmp_path: Path) -> None:
    file = write(tmp_path, "[[readers]]\nname='r'\nurl='llrp://h'\nrol='x'\n")
    result = CliRunner().invoke(app, ["config", "check", str(file)])
    assert result.exit_code == 1
    assert f"{file}:4: readers[0].rol: unknown key" in result.output


def test_config_check_missing_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["config", "check", str(tmp_path / "absent.toml")])
    assert result.exit_code == 1
    assert "cannot read" in result.output


def test_logs_redact_secret_keys(capsys: pytest.CaptureFixture[str]) -> None:
    from tagsweep.logs import configure_logging, get_logger

    configure_logging(json=True)
    try:
        get_logger("t").info("connect", password="do-not-log", host="h")
        out = capsys.readouterr().out
    finally:
        configure_logging(json=True, level="debug")  # as tests/conftest.py set it
    assert "do-not-log" not in out
    assert '"password": "***"' in out


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_passes_config_check_on_a_fresh_clone(
    example: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a fresh clone has none of the secrets: they are warnings here, errors at run time
    for key in [*EXAMPLE_ENV, MQTT_PASSWORD_ENV, "TAGSWEEP_WEB_TOKEN"]:
        monkeypatch.delenv(key, raising=False)
    result = CliRunner().invoke(app, ["config", "check", str(example)])
    assert result.exit_code == 0, result.output
    assert f"OK {example}" in result.output
    if example.stem in {"handheld", "portal"}:
        assert "warning:" in result.output
        assert "is not set" in result.output
        with pytest.raises(ConfigError, match="is not set"):
            load_config(example)


def test_absent_secret_file_is_a_warning_at_check_time(tmp_path: Path) -> None:
    file = write(tmp_path, "[web]\nenabled=true\ntoken_file='/run/credentials/x/web-token'\n")
    result = CliRunner().invoke(app, ["config", "check", str(file)])
    assert result.exit_code == 0, result.output
    assert "warning:" in result.output
    assert "web.token_file: cannot read /run/credentials/x/web-token" in result.output
    with pytest.raises(ConfigError, match="web-token"):
        load_config(file)


def test_secret_file_readable_by_others_is_an_error_at_check_time(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret")
    secret.chmod(0o644)
    file = write(tmp_path, f"[mqtt]\npassword_file='{secret}'\n")
    result = CliRunner().invoke(app, ["config", "check", str(file)])
    assert result.exit_code == 1
    assert "chmod 600" in result.output
    assert "s3cret" not in result.output
