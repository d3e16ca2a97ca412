"""One real NetBox per test session (see :mod:`tests.netbox.server`).

The first NetBox test of a session starts it from the cached, migrated database (about
15 s warm; a cold machine first builds the cache, several minutes); every NetBox test
shares it and keeps to its own site and asset-tag prefix.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.netbox.server import NetBoxServer


@pytest.fixture(scope="session")
def netbox() -> Iterator[NetBoxServer]:
    server = NetBoxServer().start()
    try:
        yield server
    finally:
        server.stop()
