#!/usr/bin/env bash
# Set up a working tree on a fresh Debian machine: a virtualenv with the locked
# dependencies and tagsweep installed in editable mode. With --system, also install
# the system packages the test suite talks to (mosquitto, promtool, systemd-analyze,
# chromium, PostgreSQL and Redis for a test NetBox) when they are missing. Idempotent
# and quick when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

apt_install() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "bootstrap: missing system packages ($*); run as root or install them" >&2
    exit 1
  fi
  echo "bootstrap: installing system packages: $*"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if [ "${1:-}" = "--system" ]; then
  missing=()
  [ -x /usr/sbin/mosquitto ] || command -v mosquitto >/dev/null || missing+=(mosquitto mosquitto-clients)
  command -v promtool >/dev/null || missing+=(prometheus)
  command -v systemd-analyze >/dev/null || missing+=(systemd)
  command -v openssl >/dev/null || missing+=(openssl)  # test CA for MQTT over TLS
  [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] || missing+=(chromium chromium-driver)
  # a real NetBox for the NetBox tests (tests/netbox/server.py): PostgreSQL, Redis, and
  # what building psycopg's C extension for NetBox's own virtualenv needs
  ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing+=(postgresql)
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v pg_config >/dev/null || missing+=(libpq-dev)
  command -v gcc >/dev/null || missing+=(gcc)
  if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi
  # the Debian prometheus package may start a server; tests never need it
  if command -v systemctl >/dev/null && systemctl is-active --quiet prometheus 2>/dev/null; then
    systemctl stop prometheus || true
  fi
  # nor the Debian postgresql and redis-server services: the NetBox tests start their own
  for unit in postgresql redis-server; do
    if command -v systemctl >/dev/null && systemctl is-active --quiet "$unit" 2>/dev/null; then
      systemctl stop "$unit" || true
    fi
  done
fi

if ! "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null; then
  apt_install python3-venv
fi

stamp="$VENV/.tagsweep-installed"
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
if [ ! -f "$stamp" ] || [ requirements.lock -nt "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r requirements.lock
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps -e .
  touch "$stamp"
fi
