"""A real NetBox for the tests and benchmarks: PyPI's ``netbox`` in its own virtualenv,
PostgreSQL and Redis from Debian, all on loopback ports.

NetBox needs Python 3.12 or later; the machine's is found on ``PATH``, under pyenv, or
through uv. The first start (a cold machine) builds a virtualenv, migrates an empty
database (several minutes, CPU-bound), creates the test user and its tokens, and keeps a
``pg_dump`` of the result in the cache folder (``$TAGSWEEP_NETBOX_CACHE``, default
``~/.cache/tagsweep/netbox-<version>``). Every later start restores that dump into a
fresh PostgreSQL cluster in a second or so, then starts Redis and NetBox under gunicorn.

PostgreSQL refuses to run as root, so as root its cluster runs as the ``postgres`` user
from a world-traversable folder under ``/dev/shm`` (or ``/tmp`` when that is small); the
tokens are test credentials of this throw-away instance only.

Run by hand: ``python -m tests.netbox.server prepare`` (build the cache) or ``serve``
(start one and print its URL and tokens until Ctrl-C).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import free_port, wait_for_port

NETBOX_VERSION = "4.7.3"
INVENTORY_VERSION = "2.7.1"
PG_BIN_CANDIDATES = ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin")
#: fixed test secrets of a throw-away instance on loopback (never a real deployment)
SECRET_KEY = "tagsweep-test-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
PEPPER = "tagsweep-test-only-pepper-0123456789-abcdefghijklmnopqrstuvwxyz-0123"
ADMIN_PASSWORD = "tagsweep-test-admin"  # throw-away test instance


class NetBoxSetupError(RuntimeError):
    """The test NetBox cannot be set up on this machine (says what is missing)."""


def cache_dir() -> Path:
    env = os.environ.get("TAGSWEEP_NETBOX_CACHE")
    base = Path(env) if env else Path.home() / ".cache" / "tagsweep"
    return base / f"netbox-{NETBOX_VERSION}" if not env else base


def _log(message: str) -> None:
    print(f"[netbox-test-server] {message}", file=sys.stderr, flush=True)


def _works(python: str) -> bool:
    """True for an interpreter that runs and is 3.12 or later (pyenv shims may not)."""
    try:
        result = subprocess.run(
            [python, "-c", "import sys, venv; print(sys.version_info >= (3, 12))"],
            check=False, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return False
    return result.returncode == 0 and result.stdout.strip() == "True"


def find_python312() -> str:
    """A Python >= 3.12 interpreter: pyenv's, PATH's, or uv's (which may download one)."""
    candidates: list[str] = []
    roots = [os.environ.get("PYENV_ROOT", ""), str(Path.home() / ".pyenv")]
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        roots.insert(
            0, subprocess.run(["pyenv", "root"], check=False, capture_output=True, text=True).stdout
        )
    for root in roots:
        versions = Path(root.strip()) / "versions" if root.strip() else None
        if versions and versions.is_dir():
            candidates += [str(p) for p in sorted(versions.glob("3.12*/bin/python"), reverse=True)]
            candidates += [str(p) for p in sorted(versions.glob("3.13*/bin/python"), reverse=True)]
    candidates += [p for p in (shutil.which("python3.12"), shutil.which("python3.13")) if p]
    for candidate in candidates:
        if _works(candidate):
            return candidate
    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    if Path(uv).exists():
        result = subprocess.run(
            [uv, "python", "find", "3.12"], check=False, capture_output=True, text=True
        )
        if result.returncode != 0:
            subprocess.run([uv, "python", "install", "3.12"], check=False)
            result = subprocess.run(
                [uv, "python", "find", "3.12"], check=False, capture_output=True, text=True
            )
        if result.returncode == 0 and _works(result.stdout.strip()):
            return result.stdout.strip()
    raise NetBoxSetupError(
        "NetBox needs Python 3.12 or later: none under pyenv, on PATH or through uv. "
        "Install one (e.g. `pyenv install 3.12`)."
    )


def pg_bin() -> Path:
    for candidate in PG_BIN_CANDIDATES:
        if (Path(candidate) / "postgres").exists():
            return Path(candidate)
    raise NetBoxSetupError(
        "PostgreSQL is not installed: run `deploy/bootstrap.sh --system` (apt: postgresql)"
    )


def _as_postgres(cmd: list[str]) -> list[str]:
    """PostgreSQL's server programs refuse root: run them as the postgres user."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


@dataclass(frozen=True)
class Tokens:
    """Tokens of the test user ``admin`` (a superuser)."""

    v1: str  # legacy v1, write enabled
    v2: str  # nbt_<key>.<secret>, write enabled
    read_only: str  # v1, write disabled


class NetBoxServer:
    """One NetBox instance (PostgreSQL + Redis + gunicorn) on loopback ports."""

    def __init__(self, cache: Path | None = None, workers: int = 2) -> None:
        self.cache = cache or cache_dir()
        self.workers = workers
        self.venv = self.cache / "venv"
        self.dump = self.cache / "netbox.dump"
        self.tokens_file = self.cache / "tokens.json"
        base = Path(tempfile.gettempdir())
        shm = Path("/dev/shm")
        if shm.is_dir() and shutil.disk_usage(shm).free > 2 << 30:  # in memory, if roomy
            base = shm
        self.run_dir = Path(tempfile.mkdtemp(prefix="tagsweep-netbox-", dir=base))
        self.run_dir.chmod(0o755)  # the postgres user must reach its cluster inside
        self.pg_port = free_port()
        self.redis_port = free_port()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._redis: subprocess.Popen[bytes] | None = None
        self._netbox: subprocess.Popen[bytes] | None = None
        self._pg_started = False
        self.tokens: Tokens | None = None

    # -- cache ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _cache_lock(self) -> Iterator[None]:
        self.cache.mkdir(parents=True, exist_ok=True)
        with (self.cache / ".lock").open("w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _venv_ready(self) -> bool:
        stamp = self.venv / ".installed"
        return stamp.exists() and stamp.read_text() == f"{NETBOX_VERSION} {INVENTORY_VERSION}"

    def _build_venv(self) -> None:
        python = find_python312()
        _log(f"creating NetBox {NETBOX_VERSION} virtualenv with {python}")
        shutil.rmtree(self.venv, ignore_errors=True)
        subprocess.run([python, "-m", "venv", str(self.venv)], check=True)
        subprocess.run(
            [
                str(self.venv / "bin" / "python"),
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                f"netbox=={NETBOX_VERSION}",
                f"netbox-inventory=={INVENTORY_VERSION}",
            ],
            check=True,
        )
        (self.venv / ".installed").write_text(f"{NETBOX_VERSION} {INVENTORY_VERSION}")

    def _prepare_locked(self) -> None:
        if not self._venv_ready():
            self._build_venv()
        if self.dump.exists() and self.tokens_file.exists():
            return
        _log("migrating an empty NetBox database (once per machine, several minutes)")
        started = time.monotonic()
        builder = NetBoxServer(self.cache, self.workers)
        try:
            builder._start_postgres()
            builder._psql("CREATE DATABASE netbox")
            builder._start_redis()
            builder._write_configuration()
            builder._manage("migrate", "--no-input")
            tokens = builder._manage_shell(_CREATE_USER)
            builder._pg("pg_dump", "-Fc", "-d", "netbox", "-f", str(self.dump) + ".tmp")
        finally:
            builder.stop()
        Path(str(self.dump) + ".tmp").replace(self.dump)
        self.tokens_file.write_text(tokens.strip().splitlines()[-1] + "\n")
        _log(f"migrated and cached in {time.monotonic() - started:.0f} s: {self.dump}")

    def prepare(self) -> None:
        """Build the virtualenv and the migrated database dump if missing (locked, so
        several processes wait for one build)."""
        with self._cache_lock():
            self._prepare_locked()

    # -- processes -----------------------------------------------------------------------

    def _pg(self, program: str, *args: str, stdin: Any = None) -> str:
        result = subprocess.run(
            [str(pg_bin() / program), "-h", "127.0.0.1", "-p", str(self.pg_port), "-U", "postgres",
             *args],
            check=False,
            capture_output=True,
            text=stdin is None,
            stdin=stdin,
        )  # fmt: skip
        if result.returncode != 0:
            err = result.stderr if isinstance(result.stderr, str) else result.stderr.decode()
            raise NetBoxSetupError(f"{program} {' '.join(args)} failed: {err.strip()}")
        out = result.stdout
        return out if isinstance(out, str) else out.decode()

    def _psql(self, sql: str) -> str:
        return self._pg("psql", "-v", "ON_ERROR_STOP=1", "-d", "postgres", "-c", sql)

    def _start_postgres(self) -> None:
        if self._pg_started:
            return
        data = self.run_dir / "pg"
        data.mkdir()
        if os.geteuid() == 0:
            shutil.chown(data, "postgres", "postgres")
        data.chmod(0o700)
        bindir = pg_bin()
        subprocess.run(
            _as_postgres([str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U",
                          "postgres", "-E", "UTF8", "--no-sync", "--locale=C"]),
            check=True, capture_output=True,
        )  # fmt: skip
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.pg_port} -k {data} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        subprocess.run(
            _as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l",
                          str(data / "server.log"), "-w", "-t", "60", "start"]),
            check=True, capture_output=True,
        )  # fmt: skip
        self._pg_started = True

    def _stop_postgres(self) -> None:
        if not self._pg_started:
            return
        subprocess.run(
            _as_postgres([str(pg_bin() / "pg_ctl"), "-D", str(self.run_dir / "pg"), "-m",
                          "immediate", "-w", "stop"]),
            check=False, capture_output=True,
        )  # fmt: skip
        self._pg_started = False

    def _start_redis(self) -> None:
        redis = shutil.which("redis-server")
        if redis is None:
            raise NetBoxSetupError(
                "redis-server is not installed: run `deploy/bootstrap.sh --system` "
                "(apt: redis-server)"
            )
        log = (self.run_dir / "redis.log").open("ab")
        self._redis = subprocess.Popen(
            [redis, "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.run_dir)],
            stdout=log, stderr=log,
        )  # fmt: skip
        wait_for_port(self.redis_port, timeout=30)

    def _write_configuration(self) -> None:
        conf = self.run_dir / "root" / "conf"
        conf.mkdir(parents=True, exist_ok=True)
        (conf / "configuration.py").write_text(
            _CONFIGURATION.format(
                pg_port=self.pg_port,
                redis_port=self.redis_port,
                secret=SECRET_KEY,
                pepper=PEPPER,
                media=self.run_dir / "media",
            )
        )

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        env["NETBOX_ROOT"] = str(self.run_dir / "root")
        env["PATH"] = f"{self.venv / 'bin'}:{env.get('PATH', '')}"
        return env

    def _manage(self, *args: str) -> str:
        result = subprocess.run(
            [str(self.venv / "bin" / "netbox"), *args],
            env=self._env(), check=False, capture_output=True, text=True, cwd=self.run_dir,
        )  # fmt: skip
        if result.returncode != 0:
            raise NetBoxSetupError(
                f"netbox {' '.join(args)} failed:\n{result.stdout[-2000:]}{result.stderr[-4000:]}"
            )
        return result.stdout

    def _manage_shell(self, code: str) -> str:
        return self._manage("shell", "--no-imports", "-c", code)

    def start(self) -> NetBoxServer:
        """Start a NetBox from the cached dump (preparing the cache first if needed)."""
        self.prepare()
        started = time.monotonic()
        try:
            self._start_postgres()
            self._psql("CREATE DATABASE netbox")
            with self.dump.open("rb") as fh:
                self._pg("pg_restore", "--no-owner", "-d", "netbox", stdin=fh)
            self._start_redis()
            self._write_configuration()
            self.start_netbox()
        except BaseException:
            self.stop()
            raise
        data = json.loads(self.tokens_file.read_text())
        self.tokens = Tokens(v1=data["v1"], v2=data["v2"], read_only=data["read_only"])
        _log(f"NetBox {NETBOX_VERSION} at {self.url} in {time.monotonic() - started:.1f} s")
        return self

    def gunicorn(self, port: int) -> subprocess.Popen[bytes]:
        """A gunicorn serving this NetBox on ``port`` (a second front for outage tests)."""
        log = (self.run_dir / f"gunicorn-{port}.log").open("ab")
        return subprocess.Popen(
            [str(self.venv / "bin" / "gunicorn"), "--bind", f"127.0.0.1:{port}",
             "--workers", str(self.workers), "--threads", "4", "--timeout", "300",
             "--preload", "--chdir", str(self.run_dir), "netbox.wsgi"],
            env=self._env(), stdout=log, stderr=log, start_new_session=True,
        )  # fmt: skip

    def wait_ready(self, port: int, proc: subprocess.Popen[bytes], timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{port}/api/status/"
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise NetBoxSetupError(
                    f"gunicorn exited with {proc.returncode}; see {self.run_dir}/gunicorn-*.log"
                )
            try:
                with urllib.request.urlopen(url, timeout=5) as resp:
                    if resp.status == 200 or resp.status == 403:
                        return
            except urllib.error.HTTPError as exc:
                if exc.code in (401, 403):
                    return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise NetBoxSetupError(f"NetBox did not answer on {url} within {timeout:.0f} s")

    def start_netbox(self) -> None:
        self._netbox = self.gunicorn(self.port)
        self.wait_ready(self.port, self._netbox)

    @staticmethod
    def stop_process(proc: subprocess.Popen[bytes] | None) -> None:
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def stop(self) -> None:
        self.stop_process(self._netbox)
        self._netbox = None
        if self._redis is not None and self._redis.poll() is None:
            self._redis.terminate()
            self._redis.wait(timeout=10)
        self._redis = None
        self._stop_postgres()
        shutil.rmtree(self.run_dir, ignore_errors=True)


_CONFIGURATION = """\
# Generated for a throw-away test instance on loopback.
ALLOWED_HOSTS = ['*']
DATABASES = {{
    'default': {{
        'ENGINE': 'django.db.backends.postgresql',
        'NAME': 'netbox',
        'USER': 'postgres',
        'PASSWORD': '',
        'HOST': '127.0.0.1',
        'PORT': '{pg_port}',
        'CONN_MAX_AGE': 300,
    }}
}}
REDIS = {{
    'tasks': {{'HOST': '127.0.0.1', 'PORT': {redis_port}, 'DATABASE': 0, 'SSL': False}},
    'caching': {{'HOST': '127.0.0.1', 'PORT': {redis_port}, 'DATABASE': 1, 'SSL': False}},
}}
SECRET_KEY = '{secret}'
API_TOKEN_PEPPERS = {{1: '{pepper}'}}
PLUGINS = ['netbox_inventory']
LOGIN_REQUIRED = True
CENSUS_REPORTING_ENABLED = False
RELEASE_CHECK_URL = None
MAX_PAGE_SIZE = 1000
MEDIA_ROOT = '{media}'
"""

_CREATE_USER = f"""
import json
from users.models import Token, User
user = User.objects.create_superuser('admin', 'admin@example.com', '{ADMIN_PASSWORD}')
v1 = Token(user=user, version=1, write_enabled=True, description='tagsweep tests v1')
v1.save()
v2 = Token(user=user, version=2, write_enabled=True, description='tagsweep tests v2')
v2.save()
ro = Token(user=user, version=1, write_enabled=False, description='tagsweep tests read-only')
ro.save()
print(json.dumps({{'v1': v1.token, 'v2': 'nbt_' + v2.key + '.' + v2.token,
                  'read_only': ro.token}}))
"""


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "serve"
    server = NetBoxServer()
    if command == "prepare":
        try:
            server.prepare()
        finally:
            server.stop()
        return 0
    if command == "serve":
        server.start()
        assert server.tokens is not None
        print(f"NETBOX_URL={server.url}")
        print(f"NETBOX_TOKEN={server.tokens.v1}")
        print(f"NETBOX_TOKEN_V2={server.tokens.v2}")
        print(f"NETBOX_TOKEN_READ_ONLY={server.tokens.read_only}", flush=True)
        try:
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
        finally:
            server.stop()
        return 0
    print("usage: python -m tests.netbox.server prepare|serve", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
