"""The exports kind: an alert watches the organization's scheduled exports and fires while files
fail to be written, resolving once a retry writes them."""

from datetime import timedelta

import pytest

from alerts.models import Notification
from alerts.services import rule_create, rules_evaluate
from ingest.models import ExportSchedule
from ingest.retention.archive import day_start
from ingest.retention.scheduled_exports import scheduled_exports_run
from tests.factories import ApplicationFactory
from tests.ingest.archive_helpers import events_add, export_folder_block

pytestmark = pytest.mark.django_db


def test_a_failed_export_fires_the_rule_and_its_retry_resolves_it(archive_dir):
    application = ApplicationFactory()
    now = day_start(application.created_at) + timedelta(days=2, hours=3)
    day = day_start(now) - timedelta(days=1)
    events_add(application, day + timedelta(hours=1), 2)
    ExportSchedule.objects.create(
        organization=application.organization, formats=["ndjson.gz"], prefix="daily", start_date=day.date()
    )
    rule = rule_create(
        organization=application.organization, application=None, name="exports fail", kind="exports", parameters={}
    )
    blocker = export_folder_block(archive_dir, application)

    assert scheduled_exports_run(now=now).failed == 1
    rules_evaluate(now=now)
    rule.refresh_from_db()
    assert (rule.state, rule.last_value) == ("firing", 1)

    blocker.unlink()
    assert scheduled_exports_run(now=now + timedelta(hours=1)).files == 1
    rules_evaluate(now=now + timedelta(hours=1))
    rule.refresh_from_db()
    assert rule.state == "ok"
    assert list(Notification.objects.filter(rule=rule).order_by("pk").values_list("type", flat=True)) == [
        "alert.firing",
        "alert.resolved",
    ]


def test_a_rule_of_one_application_counts_only_its_failed_files(archive_dir):
    application = ApplicationFactory()
    sibling = ApplicationFactory(organization=application.organization)
    now = day_start(application.created_at) + timedelta(days=2, hours=3)
    ExportSchedule.objects.create(
        organization=application.organization,
        formats=["ndjson.gz"],
        prefix="daily",
        start_date=(day_start(now) - timedelta(days=1)).date(),
    )
    mine = rule_create(
        organization=application.organization, application=application, name="mine", kind="exports", parameters={}
    )
    export_folder_block(archive_dir, sibling)

    assert scheduled_exports_run(now=now).failed == 1
    rules_evaluate(now=now)

    mine.refresh_from_db()
    assert (mine.state, mine.last_value) == ("ok", 0)
