"""The Users card of an application's page and its Versions panel: what a member sees after
events from a few users and versions came through the signed ingest and the rollup job ran."""

import csv
import io
import re
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse

from accounts.models import Membership
from ingest.rollups import rollups_update
from ingest.rollups.distinct import EXACT_LIMIT
from tests.conftest import app_keys_create, iso, make_event
from tests.factories import UserFactory
from tests.ingest.test_user_rollups import copy_events

pytestmark = pytest.mark.django_db

OLD_SDK = "telemetry-kit-rust/0.2.0"


def user(name: str) -> str:
    return "client_" + uuid.uuid5(uuid.NAMESPACE_URL, name).hex * 2


def event(name: str, moment: datetime, version: str) -> dict:
    return make_event(
        timestamp=iso(moment),
        user_id=user(name),
        session_id=f"sess_{name}",
        service={"name": "cli", "version": version, "language": "rust"},
    )


@pytest.fixture
def usage(signed_post):
    """Four users: ada (2.0.0 an hour ago, 1.0.0 three days ago), bob (2.0.0 twice an hour ago),
    cy (2.0.0 three days ago), and dee (0.9.0 with an older SDK, 20 days ago)."""
    keys = app_keys_create(name="Shop CLI")
    now = datetime.now(UTC)
    recent, earlier = now - timedelta(hours=1), now - timedelta(days=3)
    assert (
        signed_post(
            keys,
            [
                event("ada", recent, "2.0.0"),
                event("bob", recent, "2.0.0"),
                event("bob", recent + timedelta(minutes=1), "2.0.0"),
                event("ada", earlier, "1.0.0"),
                event("cy", earlier, "2.0.0"),
            ],
        ).status_code
        == 200
    )
    assert (
        signed_post(keys, [event("dee", now - timedelta(days=20), "0.9.0")], HTTP_X_SDK_VERSION=OLD_SDK).status_code
        == 200
    )
    rollups_update()
    return keys


@pytest.fixture
def person(usage):
    person = UserFactory(is_staff=True)
    Membership.objects.create(user=person, organization=usage.application.organization, role="viewer")
    return person


@pytest.fixture
def member(client, person):
    client.force_login(person)
    return client


def application_url(keys) -> str:
    return reverse("dashboards:application", args=[keys.org_id, keys.app_id])


def versions_url(keys) -> str:
    return reverse("dashboards:application_versions", args=[keys.org_id, keys.app_id])


def text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html)).strip()


def figures(html: str) -> dict[str, str]:
    """The Users card's figures as a person reads them: the term (without its note), then the value."""
    card = html.split('id="users-title"', 1)[1].split("</dl>", 1)[0]
    return {
        text(term.split("<span", 1)[0]): text(value)
        for term, value in re.findall(r"<dt>(.*?)</dt><dd>(.*?)</dd>", card, re.S)
    }


def test_the_users_card_shows_dau_wau_mau_stickiness_and_the_ranges_users(member, usage):
    response = member.get(application_url(usage), {"range": "30d", "by": "day"})

    assert response.status_code == 200
    assert figures(response.content.decode()) == {
        "DAU": "2",
        "WAU": "3",
        "MAU": "4",
        "Stickiness": "50.0%",
        "Users": "4",
        "Sessions": "4",
    }
    assert "Per UTC day, over the range picked" in response.content.decode()
    assert "≈" not in response.content.decode()


def test_a_range_shorter_than_a_week_charts_the_last_seven_days_and_says_so(member, usage):
    response = member.get(application_url(usage), {"range": "1h"})

    html = response.content.decode()
    assert "over the last 7 days: the range picked is shorter than that" in html
    chart = response.context["charts"]["users"]
    assert len(chart["x"]) == 8  # seven days back from now: eight UTC days begun
    assert sum(chart["new_users"]) == 3  # ada, bob and cy; dee came 20 days ago
    assert figures(html)["Users"] == "3"


def test_the_users_csv_has_a_row_per_utc_day(member, usage):
    response = member.get(application_url(usage), {"range": "7d", "format": "csv", "data": "users"})

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv"
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == ["day_start_utc", "users", "new_users", "sessions", "events", "exact"]
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    assert rows[1][0] == (today - timedelta(days=7)).isoformat()
    assert rows[-1][0] == today.isoformat()
    assert sum(int(row[4]) for row in rows[1:]) == 5  # dee's event is older than the week
    assert sum(int(row[2]) for row in rows[1:]) == 3
    assert {row[5] for row in rows[1:]} == {"True"}


def test_the_application_page_links_to_the_versions_panel(member, usage):
    response = member.get(application_url(usage))

    assert f'href="{versions_url(usage)}"' in response.content.decode()


def rows_of(html: str, title_id: str) -> list[list[str]]:
    """The rows of the table under the heading ``title_id``, as the cells' text, times left out."""
    body = html.split(f'id="{title_id}"', 1)[1].split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return [
        [text(cell) for cell in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row, re.S) if "<time" not in cell]
        for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)
    ]


def test_the_versions_panel_lists_service_versions_with_users_events_and_recent_share(member, usage):
    response = member.get(versions_url(usage))

    assert response.status_code == 200
    html = response.content.decode()
    assert rows_of(html, "versions-title") == [
        ["cli", "2.0.0", "3", "4", "100.0%"],
        ["cli", "0.9.0", "1", "1", "0.0%"],
        ["cli", "1.0.0", "1", "1", "33.3%"],
    ]
    assert [series["label"] for series in response.context["charts"]["shares"]["series"]] == [
        "cli 2.0.0",
        "cli 0.9.0",
        "cli 1.0.0",
    ]


def test_versions_below_the_chosen_share_are_the_ones_to_drop(member, usage):
    by_default = member.get(versions_url(usage)).content.decode()
    at_half = member.get(versions_url(usage), {"below": "50"}).content.decode()

    assert rows_of(by_default, "drop-title") == [["cli", "0.9.0", "1", "1", "0.0%"]]
    assert rows_of(at_half, "drop-title") == [["cli", "0.9.0", "1", "1", "0.0%"], ["cli", "1.0.0", "1", "1", "33.3%"]]
    assert 'value="50"' in at_half


@pytest.mark.parametrize("below", ["lots", "-1", "101"])
def test_an_invalid_share_is_refused_with_400_and_explained(member, usage, below):
    response = member.get(versions_url(usage), {"below": below})

    assert response.status_code == 400
    html = response.content.decode()
    assert 'aria-invalid="true"' in html
    assert "Showing below 5%." in html
    assert rows_of(html, "drop-title") == [["cli", "0.9.0", "1", "1", "0.0%"]]


def test_sdk_versions_are_shown_with_of_sdk(member, usage):
    response = member.get(versions_url(usage), {"of": "sdk"})

    assert rows_of(response.content.decode(), "versions-title") == [
        ["telemetry-kit-rust/0.3.0", "3", "5", "100.0%"],
        [OLD_SDK, "1", "1", "0.0%"],
    ]


def test_first_and_last_seen_are_shown_in_the_members_time_zone(member, person, usage):
    person.time_zone = "Asia/Kolkata"
    person.save(update_fields=["time_zone"])

    response = member.get(versions_url(usage))

    dee = response.context["rows"][1]
    shown = dee.first_seen.astimezone(ZoneInfo("Asia/Kolkata"))
    assert f'<time datetime="{shown.isoformat()}">{shown:%Y-%m-%d %H:%M} IST</time>' in response.content.decode()


def test_the_versions_csv_lists_the_table(member, usage):
    response = member.get(versions_url(usage), {"format": "csv"})

    assert response.status_code == 200
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == [
        "service",
        "version",
        "users",
        "events",
        "first_seen_utc",
        "last_seen_utc",
        "share_of_last_7_days_percent",
    ]
    assert [row[:4] + row[6:] for row in rows[1:]] == [
        ["cli", "2.0.0", "3", "4", "100.0"],
        ["cli", "0.9.0", "1", "1", "0.0"],
        ["cli", "1.0.0", "1", "1", "33.333"],
    ]
    assert rows[2][4] == rows[2][5] and rows[2][4].endswith("+00:00")


def test_a_formula_like_version_is_written_to_csv_as_text(member, usage, signed_post):
    signed_post(usage, [event("eve", datetime.now(UTC) - timedelta(hours=2), "=1+1")])
    rollups_update()

    rows = list(csv.reader(io.StringIO(member.get(versions_url(usage), {"format": "csv"}).content.decode())))

    assert ["cli", "'=1+1"] in [row[:2] for row in rows]


def test_another_organizations_member_gets_404_on_both_panels(client, usage):
    outsider = UserFactory(is_staff=True)
    Membership.objects.create(user=outsider, organization=app_keys_create().application.organization, role="owner")
    client.force_login(outsider)

    assert client.get(versions_url(usage)).status_code == 404
    assert client.get(application_url(usage), {"format": "csv", "data": "users"}).status_code == 404


def test_estimated_counts_are_marked(client):
    keys = app_keys_create()
    person = UserFactory(is_staff=True)
    Membership.objects.create(user=person, organization=keys.application.organization, role="viewer")
    client.force_login(person)
    # Past the exact limit only the HyperLogLog sketch counts: the figures are estimates.
    copy_events(
        keys.application, datetime.now(UTC) - timedelta(hours=2), (user(f"u{n}") for n in range(EXACT_LIMIT + 500))
    )
    rollups_update()

    html = client.get(application_url(keys), {"range": "7d"}).content.decode()

    assert 'title="Estimated (HyperLogLog), within about 1%"' in html
    dau = figures(html)["DAU"]
    assert dau.startswith("≈about ")  # "about" is for screen readers only
    assert abs(int(dau.removeprefix("≈about ").replace(",", "")) - (EXACT_LIMIT + 500)) < 0.02 * EXACT_LIMIT
