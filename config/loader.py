"""Load a TOML configuration into :class:`TagsweepConfig`, with errors a user can act on.

Every problem is reported at once, each with the file, the key path in TOML notation
(``readers[1].url``), the line when it can be found, and what was expected. Secrets are
resolved here from environment variables or files with tight permissions, and never
appear in any message.
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError

from tagsweep.config.schema import TagsweepConfig

#: Environment variables that override secrets from the configuration file.
MQTT_PASSWORD_ENV = "TAGSWEEP_MQTT_PASSWORD"
WEB_TOKEN_ENV = "TAGSWEEP_WEB_TOKEN"

# Keys that must never hold a secret inline: the file is often world-readable.
_INLINE_SECRETS = {
    ("mqtt", "password"): "password_file or password_env",
    ("web", "token"): "token_file or token_env",
}


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One thing wrong with a configuration file."""

    file: str
    key_path: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        key = f" {self.key_path}:" if self.key_path else ""
        return f"{where}:{key} {self.message}"


class ConfigError(Exception):
    """The configuration is invalid; ``problems`` lists every error found."""

    def __init__(self, problems: Sequence[ConfigProblem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def key_path(loc: Sequence[int | str]) -> str:
    """``('readers', 1, 'url')`` → ``readers[1].url``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _find_line(text: str, loc: Sequence[int | str]) -> int | None:
    """Best-effort line of the key a problem is about (TOML parsers keep no positions)."""
    names = [p for p in loc if isinstance(p, str)]
    if not names:
        return None
    lines = text.splitlines()
    # Walk tables in order: find the table header of the first names, then the key.
    start = 0
    for depth in range(len(names), 0, -1):
        key = names[depth - 1]
        header = ".".join(names[:depth])
        pattern = re.compile(rf"^\s*(\[\[?\s*{re.escape(header)}\s*\]\]?|{re.escape(key)}\s*=)")
        index = [i for i, line in enumerate(lines[start:], start) if pattern.match(line)]
        if index:
            # the n-th array entry when the path names one
            ints = [p for p in loc if isinstance(p, int)]
            pick = ints[0] if ints and len(index) > ints[0] else 0
            return index[pick] + 1
    return None


def _describe(error: Mapping[str, Any]) -> str:
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        return "unknown key (check the spelling; see config/examples/)"
    if kind == "missing":
        return "required key is missing"
    msg = str(error.get("msg", "invalid value"))
    msg = msg.removeprefix("Value error, ")
    if (
        "input" in error
        and kind not in {"model_type", "dict_type"}
        and not isinstance(error["input"], dict | list)
    ):
        msg += f" (got {error['input']!r})"
    return msg


def _secret_from(
    *,
    file: str,
    key: str,
    env_override: str,
    env_name: str | None,
    secret_file: Path | None,
    base: Path,
    problems: list[ConfigProblem],
    absent: list[ConfigProblem],
) -> SecretStr | None:
    value = os.environ.get(env_override)
    if value:
        return SecretStr(value)
    if env_name:
        value = os.environ.get(env_name)
        if value is None:
            absent.append(
                ConfigProblem(file, f"{key}_env", f"environment variable {env_name} is not set")
            )
            return None
        return SecretStr(value)
    if secret_file is not None:
        path = secret_file if secret_file.is_absolute() else base / secret_file
        try:
            mode = path.stat().st_mode
        except FileNotFoundError as exc:
            absent.append(ConfigProblem(file, f"{key}_file", f"cannot read {path}: {exc.strerror}"))
            return None
        except OSError as exc:
            problems.append(
                ConfigProblem(file, f"{key}_file", f"cannot read {path}: {exc.strerror}")
            )
            return None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            problems.append(
                ConfigProblem(
                    file,
                    f"{key}_file",
                    f"{path} is readable by group or others (mode {stat.S_IMODE(mode):o}); "
                    f"run: chmod 600 {path}",
                )
            )
            return None
        return SecretStr(path.read_text(encoding="utf-8").strip())
    return None


def parse_config(
    data: Mapping[str, Any],
    *,
    file: str = "<config>",
    text: str = "",
    base: Path | None = None,
    absent_secrets: list[ConfigProblem] | None = None,
) -> TagsweepConfig:
    """Validate already-parsed TOML data; raises :class:`ConfigError` with every problem.

    A secret whose environment variable is unset or whose file does not exist is an
    error, unless ``absent_secrets`` is given: then it is appended there (a warning for
    ``config check``, which runs where the secret is not provisioned yet) and the secret
    stays ``None``. A secret file readable by others is always an error.
    """
    problems: list[ConfigProblem] = []
    absent: list[ConfigProblem] = []
    data = dict(data)
    for (table, key), instead in _INLINE_SECRETS.items():
        section = data.get(table)
        if isinstance(section, dict) and key in section:
            problems.append(
                ConfigProblem(
                    file,
                    f"{table}.{key}",
                    f"secrets are not accepted inline; use {instead}",
                    _find_line(text, (table, key)),
                )
            )
            data[table] = {k: v for k, v in section.items() if k != key}
    try:
        config = TagsweepConfig.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(err["loc"])
            problems.append(
                ConfigProblem(file, key_path(loc), _describe(err), _find_line(text, loc))
            )
        raise ConfigError(problems) from None
    base = base or Path.cwd()
    password = _secret_from(
        file=file,
        key="mqtt.password",
        env_override=MQTT_PASSWORD_ENV,
        env_name=config.mqtt.password_env,
        secret_file=config.mqtt.password_file,
        base=base,
        problems=problems,
        absent=absent,
    )
    token = _secret_from(
        file=file,
        key="web.token",
        env_override=WEB_TOKEN_ENV,
        env_name=config.web.token_env,
        secret_file=config.web.token_file,
        base=base,
        problems=problems,
        absent=absent,
    )
    web = config.web
    token_source = web.token_env or web.token_file or os.environ.get(WEB_TOKEN_ENV)
    if web.enabled and not web.loopback and not web.insecure and not token_source:
        problems.append(
            ConfigProblem(
                file,
                "web.listen",
                f"{web.listen} is reachable from other hosts: set web.token_file or "
                f"web.token_env (or {WEB_TOKEN_ENV}), or web.insecure = true to show the "
                "count to anyone who can reach it",
                _find_line(text, ("web", "listen")),
            )
        )
    if absent_secrets is None:
        problems.extend(absent)
    else:
        absent_secrets.extend(absent)
    if problems:
        raise ConfigError(problems)
    return config.model_copy(
        update={
            "mqtt": config.mqtt.model_copy(update={"password": password}),
            "web": config.web.model_copy(update={"token": token}),
        }
    )


def load_config(
    path: str | os.PathLike[str], *, absent_secrets: list[ConfigProblem] | None = None
) -> TagsweepConfig:
    """Read and validate a TOML configuration file (``absent_secrets``: see
    :func:`parse_config`)."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([ConfigProblem(str(file), "", f"cannot read: {exc.strerror}")]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([ConfigProblem(str(file), "", f"not UTF-8 text: {exc}")]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        raise ConfigError(
            [
                ConfigProblem(
                    str(file), "", f"not valid TOML: {exc}", int(match.group(1)) if match else None
                )
            ]
        ) from None
    return parse_config(
        data, file=str(file), text=text, base=file.parent, absent_secrets=absent_secrets
    )
