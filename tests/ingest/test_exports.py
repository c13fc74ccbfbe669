"""The CSV cells the product writes: text a spreadsheet would run as a formula is kept as text; and
every export format holds the same rows."""

import gzip
import io
import json
from datetime import UTC, datetime, timedelta

import pyarrow.parquet as pq
import pytest
from django.core.management import call_command

from ingest.retention.exports import csv_cell
from tests.factories import ApplicationFactory
from tests.ingest.archive_helpers import events_add


@pytest.mark.parametrize(
    "value", ["=1+1", "+1+1", "-1+1", "@SUM(A1)", "\t=1", "\r=1", "＝1+1", "-", "+", "-inf", "-2e3x"]
)
def test_a_cell_that_would_start_a_formula_is_kept_as_text(value):
    assert csv_cell(value) == "'" + value


@pytest.mark.parametrize("value", ["-12.5", "+3", "-.5", "-1e-9", "12", "a=1", " =1", "", None, 7, "'=1"])
def test_numbers_and_other_cells_are_left_as_they_are(value):
    assert csv_cell(value) == value


@pytest.mark.django_db
def test_export_events_gives_the_same_rows_in_every_format(tmp_path):
    application = ApplicationFactory()
    since = datetime(2026, 3, 1, tzinfo=UTC)
    events_add(application, since + timedelta(hours=1), 3)

    def export(fmt: str) -> bytes:
        output = tmp_path / f"export.{fmt}"
        call_command(
            "export_events",
            "--org",
            application.organization.public_id,
            "--since",
            "2026-03-01",
            "--until",
            "2026-03-02",
            "--format",
            fmt,
            "--output",
            str(output),
            stderr=io.StringIO(),
        )
        return output.read_bytes()

    lines = [json.loads(line) for line in export("ndjson").decode().splitlines()]
    table = pq.read_table(io.BytesIO(export("parquet"))).to_pylist()

    assert [json.loads(line) for line in gzip.decompress(export("ndjson.gz")).decode().splitlines()] == lines
    assert [row["event_id"] for row in table] == [line["event_id"] for line in lines] and len(lines) == 3
    assert [json.loads(row["data"]) for row in table] == [line["data"] for line in lines]
    assert [row["timestamp"].isoformat() for row in table] == [line["timestamp"] for line in lines]
