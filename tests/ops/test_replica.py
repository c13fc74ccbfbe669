"""DATABASE_REPLICA_URL: the dashboards read their numbers from the replica, and who may see what
from the primary. The "replica" here is a snapshot of the test database taken mid-test, so the two
differ and the page shows which one it read."""

import http.client
import re

import psycopg
import pytest
from django.db import connection

from ingest.rollups import rollups_update
from tests.conftest import app_keys_create, make_event
from tests.server import database_env_for_server, running_server, signed_in_cookie

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture
def snapshot_database():
    """Yields a function that copies the test database into a new one and returns its URL."""
    settings = connection.settings_dict
    base = f"postgres://{settings['USER']}@{settings['HOST']}:{settings['PORT']}"
    name = f"{settings['NAME']}_replica"

    def snapshot() -> str:
        connection.close()  # CREATE DATABASE ... TEMPLATE needs the template unused
        with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
            admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{settings["NAME"]}"')
        return f"{base}/{name}"

    yield snapshot
    with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_dashboards_read_numbers_from_the_replica_and_access_from_the_primary(
    server_data_dir, signed_post, snapshot_database
):
    keys = app_keys_create(name="Replicated app")
    signed_post(keys, [make_event(timestamp=_now()) for _ in range(3)])
    rollups_update()
    replica_url = snapshot_database()
    signed_post(keys, [make_event(timestamp=_now()) for _ in range(4)])  # on the primary only
    rollups_update()
    cookie = signed_in_cookie(keys.application.organization)  # a member the replica does not know
    env = {**database_env_for_server(), "DATABASE_REPLICA_URL": replica_url}

    with running_server(server_data_dir(), **env) as port:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/", headers={"Cookie": cookie})
        response = conn.getresponse()
        page = response.read().decode()

    assert response.status == 200
    row = re.search(r"Replicated app</a>.*?</tr>", page, re.S).group(0)
    today = re.findall(r'<td class="num">([\d,]+)</td>', row)[0]
    assert today == "3"  # the replica's count; the primary holds 7


def _now() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
