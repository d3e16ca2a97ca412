"""One real NetBox per test session (see :mod:`tests.netbox.server`).

It is started once the tests are collected, when any selected test uses it — outside
every test's timeout, because a cold machine first builds the cached, migrated database
(several minutes); warm, the start takes about 15 s. Every NetBox test shares it and
keeps to its own site and asset-tag prefix. A failed start fails those tests (with the
reason), not the whole session.
"""

from __future__ import annotations

import pytest

from tests.netbox.server import NetBoxServer

_state: dict[str, NetBoxServer | BaseException] = {}


def _start() -> None:
    try:
        _state["server"] = NetBoxServer().start()
    except Exception as exc:  # reported by every test that needs the server
        _state["error"] = exc


def pytest_collection_finish(session: pytest.Session) -> None:
    if any("netbox" in getattr(item, "fixturenames", ()) for item in session.items):
        _start()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    server = _state.pop("server", None)
    if isinstance(server, NetBoxServer):
        server.stop()


@pytest.fixture(scope="session")
def netbox() -> NetBoxServer:
    if not _state:
        _start()
    error = _state.get("error")
    if isinstance(error, BaseException):
        raise RuntimeError(f"the test NetBox could not be started: {error}") from error
    server = _state["server"]
    assert isinstance(server, NetBoxServer)
    return server
