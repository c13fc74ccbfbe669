"""Tracked properties on the application page (under the type filter), in its CSV and in the read
API: events sent through the signed ingest, counted by the rollup job, read back as a user would."""

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest

from accounts.models import Membership
from accounts.services import read_token_issue
from ingest.models import TrackedProperty
from ingest.rollups import rollups_update
from ingest.rollups.distinct import EXACT_LIMIT
from ingest.rollups.services import tracked_property_create
from tests.conftest import app_keys_create, iso, make_event
from tests.factories import UserFactory
from tests.ingest.test_user_rollups import copy_events, user

pytestmark = pytest.mark.django_db

NOW = datetime.now(UTC)
MOMENT = NOW - timedelta(hours=2)


def command(name, who: str, duration_ms) -> dict:
    data = {"command": name, "duration_ms": duration_ms}
    return make_event(timestamp=iso(MOMENT), user_id=user(who), event={"type": "command", "data": data})


@pytest.fixture
def cli(signed_post):
    """A CLI with two tracked properties of its command events: the command, and its duration."""
    keys = app_keys_create()
    for path, kind in (("data.command", "text"), ("data.duration_ms", "number")):
        tracked_property_create(application=keys.application, event_type="command", path=path, kind=kind)
    events = [command("build", "ada", 10), command("build", "bob", 30), command("=HYPERLINK()", "ada", 20)]
    assert signed_post(keys, events).status_code == 200
    rollups_update()
    return keys.application


def viewer_of(application):
    person = UserFactory()
    Membership.objects.create(user=person, organization=application.organization, role=Membership.Role.VIEWER)
    return person


def page(client, application, **params):
    url = f"/orgs/{application.organization.public_id}/apps/{application.public_id}/"
    return client.get(url, {"range": "24h", **params})


def test_choosing_a_type_shows_its_properties_values_and_spread(client, cli):
    client.force_login(viewer_of(cli))

    html = page(client, cli, type="command").content.decode()

    properties = html[html.index('id="properties-title"') : html.index('id="users-title"')]
    assert "data.command" in properties and "data.duration_ms" in properties
    assert "<td>build</td>" in properties and "67%" in properties
    # The histogram's estimate: halfway through the (10, 20] bucket.
    assert "<dt>p50</dt><dd>15</dd>" in properties.replace("\n", "")
    # A viewer may look, not track.
    assert "Track a property" not in properties


def test_without_a_type_the_page_names_the_types_with_tracked_properties(client, cli):
    client.force_login(viewer_of(cli))

    html = page(client, cli).content.decode()

    assert "Choose a type to see its tracked properties" in html
    assert "type=command" in html and "(2)" in html


def test_a_property_s_values_download_as_csv_with_formulas_defused(client, cli):
    client.force_login(viewer_of(cli))

    response = page(client, cli, type="command", format="csv", data="property", path="data.command")

    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == ["since_utc", "event_type", "path", "value", "events", "users", "exact"]
    assert [row[3:] for row in rows[1:]] == [["build", "2", "2", "True"], ["'=HYPERLINK()", "1", "1", "True"]]
    missing = page(client, cli, type="command", format="csv", data="property", path="data.nope")
    assert missing.status_code == 404


def test_a_value_s_users_past_the_exact_limit_are_marked_as_an_estimate(client):
    keys = app_keys_create(user_hash_seed=20261207)  # the same hashes, so the same estimate, every run
    application = keys.application
    tracked_property_create(application=application, event_type="command", path="data.command", kind="text")
    distinct = EXACT_LIMIT + 100
    copy_events(application, MOMENT, (user(f"u{n}") for n in range(distinct)), data='{"command": "build"}')
    copy_events(application, MOMENT, [user("ada")], data='{"command": "test"}')
    rollups_update()
    client.force_login(viewer_of(application))

    html = page(client, application, type="command").content.decode()
    body = api(client, application, "command/data.command").json()
    rows = list(
        csv.reader(
            io.StringIO(
                page(
                    client, application, type="command", format="csv", data="property", path="data.command"
                ).content.decode()
            )
        )
    )

    estimated, exact = body["values"]
    assert (estimated["value"], estimated["events"], estimated["exact"]) == ("build", distinct, False)
    assert abs(estimated["users"] - distinct) / distinct < 0.02
    assert (exact["value"], exact["users"], exact["exact"]) == ("test", 1, True)
    assert [row[6] for row in rows[1:]] == ["False", "True"]
    properties = html[html.index('id="properties-title"') : html.index('id="users-title"')]
    assert properties.count("≈</span>") == 2  # the estimated value's users, and the note saying what it means
    assert "marks an estimate" in properties


def test_another_organization_s_member_cannot_see_the_properties(client, cli):
    client.force_login(viewer_of(app_keys_create().application))

    assert page(client, cli, type="command").status_code == 404


def api(client, application, path: str, token: str | None = None, **params):
    token = token or read_token_issue(organization=application.organization).token
    return client.get(
        f"/v1/stats/{application.organization.public_id}/{application.public_id}/properties/{path}",
        params,
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )


def test_the_read_api_gives_a_text_property_s_values_with_events_and_users(client, cli):
    response = api(client, cli, "command/data.command", limit="1")

    assert response.status_code == 200
    body = response.json()
    assert (body["type"], body["path"], body["kind"], body["events"]) == ("command", "data.command", "text", 3)
    assert body["values"] == [{"value": "build", "events": 2, "users": 2, "exact": True}]


def test_the_read_api_gives_a_number_s_spread(client, cli):
    body = api(client, cli, "command/duration_ms").json()

    assert {name: body[name] for name in ("kind", "count", "sum", "mean", "min", "max", "p50")} == {
        "kind": "number",
        "count": 3,
        "sum": 60.0,
        "mean": 20.0,
        "min": 10.0,
        "max": 30.0,
        "p50": 15.0,
    }


def test_the_read_api_refuses_an_untracked_property_and_another_organization_s_token(client, cli):
    untracked = api(client, cli, "command/data.other")
    stranger = read_token_issue(organization=app_keys_create().application.organization).token

    assert (untracked.status_code, untracked.json()["error"]["code"]) == (404, "not_tracked")
    assert api(client, cli, "command/data.command", token=stranger).status_code == 404
    assert TrackedProperty.objects.filter(application=cli).count() == 2
