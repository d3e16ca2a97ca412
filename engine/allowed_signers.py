"""Who may sign audit entries: an OpenSSH ``allowed_signers`` file, read as ssh-keygen does.

One line per key, exactly the format ``ssh-keygen -Y verify -f FILE`` reads
(``ssh-keygen(1)``, section ALLOWED SIGNERS), so an auditor can check entries with the
stock tool::

    olga,olga@example.com namespaces="tagsweep-audit" ssh-ed25519 AAAA… olga's laptop
    fiona valid-before="20270101Z" ssh-ed25519 AAAA…   # retired key
    fiona valid-after="20261201Z" ssh-ed25519 AAAA…

The first principal of a line is the person's name (what the audit log records as the
actor); further principals are aliases ``--actor`` may also use. A person may have
several lines: keys rotate with ``valid-before`` / ``valid-after``, and an old key stays
good for entries signed before its ``valid-before`` time. Times without a trailing ``Z``
are local time, as in ssh-keygen; write ``Z`` times to be unambiguous.

Roles (who may request a write-off, who signs which approval step, who is an auditor)
are not in this file: ssh-keygen refuses unknown options, so they live in
``[engine.cases]`` (``requesters``, ``auditors``, ``write_off_chain``), by the names used
here. Wildcard principals and ``cert-authority`` lines are refused line by line (a name
pattern cannot hold a role); a refused line trusts nobody and is reported, the other
lines still count.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from tagsweep.engine.sshsig import (
    AgentSigner,
    KeyFileSigner,
    SignatureError,
    Signer,
    agent_keys,
    fingerprint,
    parse_public_key,
)


@dataclass(frozen=True, slots=True)
class AllowedKey:
    """One line of the file: a key and the person it belongs to."""

    principals: tuple[str, ...]
    key_blob: bytes
    namespaces: tuple[str, ...] | None
    valid_after: datetime | None
    valid_before: datetime | None
    line: int

    @property
    def name(self) -> str:
        return self.principals[0]

    def valid_at(self, when: datetime) -> bool:
        if self.valid_after is not None and when < self.valid_after:
            return False
        return self.valid_before is None or when < self.valid_before

    def allows(self, namespace: str) -> bool:
        return self.namespaces is None or namespace in self.namespaces


def _parse_time(value: str, where: str) -> datetime:
    utc = value.endswith(("Z", "z"))
    digits = value.rstrip("Zz")
    formats = {8: "%Y%m%d", 12: "%Y%m%d%H%M", 14: "%Y%m%d%H%M%S"}
    if len(digits) not in formats or not digits.isdigit():
        raise ValueError(f"{where}: time {value!r} is not YYYYMMDD[HHMM[SS]][Z]")
    parsed = datetime.strptime(digits, formats[len(digits)])
    return parsed.replace(tzinfo=UTC) if utc else parsed.astimezone()


def _split_options(text: str) -> list[str]:
    out, current, quoted = [], "", False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            out.append(current)
            current = ""
        else:
            current += ch
    if quoted:
        raise ValueError("unterminated quote in the options")
    out.append(current)
    return out


def _tokens(line: str) -> list[str]:
    """Split on blanks outside double quotes (options may quote commas and blanks)."""
    out, current, quoted = [], "", False
    for ch in line:
        if ch == '"':
            quoted = not quoted
        if ch in " \t" and not quoted:
            if current:
                out.append(current)
            current = ""
        else:
            current += ch
    if current:
        out.append(current)
    return out


def _parse_line(text: str, where: str, number: int) -> AllowedKey:
    tokens = _tokens(text)
    if len(tokens) < 3:
        raise ValueError(f"{where}: expected PRINCIPALS [OPTIONS] KEYTYPE KEY")
    principals = tuple(p for p in tokens[0].split(",") if p)
    if not principals or any(ch in p for p in principals for ch in "*?!"):
        raise ValueError(
            f"{where}: principals {tokens[0]!r} must be plain names (patterns cannot hold a role)"
        )
    namespaces: tuple[str, ...] | None = None
    after = before = None
    rest = tokens[1:]
    if not rest[0].startswith(("ssh-", "ecdsa-", "sk-")):
        for option in _split_options(rest[0]):
            name, _, value = option.partition("=")
            value = value.strip('"')
            match name.lower():
                case "namespaces":
                    namespaces = tuple(v.strip() for v in value.split(",") if v.strip())
                case "valid-after":
                    after = _parse_time(value, f"{where}: valid-after")
                case "valid-before":
                    before = _parse_time(value, f"{where}: valid-before")
                case "cert-authority":
                    raise ValueError(f"{where}: cert-authority lines are not supported")
                case _:
                    raise ValueError(f"{where}: unknown option {name!r}")
        rest = rest[1:]
    if len(rest) < 2:
        raise ValueError(f"{where}: no key after the options")
    try:
        blob = parse_public_key(f"{rest[0]} {rest[1]}")
    except SignatureError as exc:
        raise ValueError(f"{where}: {exc}") from None
    return AllowedKey(principals, blob, namespaces, after, before, number)


@dataclass(frozen=True, slots=True)
class AllowedSigners:
    """The parsed file: its keys, and the lines it refused (each with file:line and why)."""

    path: Path
    keys: tuple[AllowedKey, ...]
    problems: tuple[str, ...] = ()

    @classmethod
    def load(cls, path: Path) -> AllowedSigners:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise SignatureError(f"cannot read allowed_signers {path}: {exc}") from None
        keys, problems = [], []
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            try:
                keys.append(_parse_line(line, f"{path}:{number}", number))
            except ValueError as exc:
                problems.append(str(exc))
        return cls(path, tuple(keys), tuple(problems))

    def lines_for(self, key_blob: bytes) -> list[AllowedKey]:
        return [k for k in self.keys if k.key_blob == key_blob]

    def identify(self, key_blob: bytes, when: datetime, namespace: str) -> AllowedKey:
        """The line that lets this key sign at ``when``; SignatureError says why not."""
        lines = self.lines_for(key_blob)
        if not lines:
            raise SignatureError(
                f"key {fingerprint(key_blob)} is not in {self.path} (unknown signer)"
            )
        for line in lines:
            if line.valid_at(when) and line.allows(namespace):
                return line
        line = lines[0]
        if not line.allows(namespace):
            raise SignatureError(
                f"key {fingerprint(key_blob)} of {line.name} may not sign {namespace!r} "
                f"({self.path}:{line.line} namespaces)"
            )
        raise SignatureError(
            f"key {fingerprint(key_blob)} of {line.name} was not valid at {when.isoformat()} "
            f"({self.path}:{line.line} valid-after/valid-before)"
        )

    def aliases(self, name: str) -> set[str]:
        """Every principal on the lines whose person is ``name``."""
        return {p for k in self.keys if k.name == name for p in k.principals}

    def people(self) -> set[str]:
        return {k.name for k in self.keys}


def find_signer(key: Path | None, signers: AllowedSigners | None) -> Signer | None:
    """The key to sign with, as git finds ``user.signingKey``:

    - ``key`` a private key file: sign with it (if it is passphrase-protected, with the
      same key from ssh-agent, found by its ``.pub`` file);
    - ``key`` a ``.pub`` file: that key, from ssh-agent;
    - no ``key``: the first key in ssh-agent that ``allowed_signers`` lists.
    """
    if key is not None:
        key = key.expanduser()
        if key.suffix == ".pub":
            return AgentSigner(parse_public_key(key.read_text(encoding="utf-8")))
        try:
            return KeyFileSigner(key)
        except SignatureError as exc:
            public = key.with_name(key.name + ".pub")
            if "password" in str(exc).lower() and public.is_file():
                return AgentSigner(parse_public_key(public.read_text(encoding="utf-8")))
            raise
    if signers is None:
        return None
    known = {k.key_blob for k in signers.keys}
    for blob in agent_keys():
        if blob in known:
            return AgentSigner(blob)
    return None
