"""Attacks from outside: each test talks to the production server (``python -m telemetry.server``)
over real sockets, as a hostile client would."""

import pytest

from tests.server import database_env_for_server, running_server


@pytest.fixture
def live_port(tmp_path):
    """The production server on the test database (PostgreSQL and Redis); yields its port."""
    with running_server(tmp_path, **database_env_for_server()) as port:
        yield port
