"""Archives in the admin: each member sees their organizations' only; managers erase a user's events."""

import threading
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from django.db import connection

from accounts.models import AuditEntry, Membership
from ingest.models import Archive
from ingest.retention import erasure
from ingest.retention.archive import LOCK_KEY, archive_run
from tests.factories import UserFactory
from tests.ingest.archive_helpers import events_add, free_application

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("archive_dir")]

NOW = datetime.now(UTC)
GONE = "client_" + "0" * 64


@pytest.fixture
def two_organizations():
    mine, theirs = free_application(name="Mine"), free_application(name="Theirs")
    for application in (mine, theirs):
        events_add(application, NOW - timedelta(days=40), 2, user_id=GONE)
    archive_run(now=NOW)
    return mine, theirs


def member(application, role=Membership.Role.ADMIN):
    user = UserFactory(is_staff=True)
    Membership.objects.create(user=user, organization=application.organization, role=role)
    return user


def test_a_member_lists_the_archives_of_their_organizations_only(client, two_organizations):
    mine, theirs = two_organizations
    client.force_login(member(mine, Membership.Role.VIEWER))

    response = client.get("/admin/ingest/archive/")

    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == list(Archive.objects.filter(application=mine))
    assert "2" in response.content.decode() and "matches" in response.content.decode()
    other = Archive.objects.get(application=theirs)
    assert client.get(f"/admin/ingest/archive/{other.pk}/change/").status_code == 404


def test_verifying_from_the_admin_reads_the_files_back(client, two_organizations):
    mine, _ = two_organizations
    client.force_login(member(mine))
    archive = Archive.objects.get(application=mine)

    response = client.post(
        "/admin/ingest/archive/", {"action": "verify_selected", "_selected_action": [archive.pk]}, follow=True
    )

    assert "1 archives match their manifests; 0 do not." in response.content.decode()


def test_a_manager_erases_a_users_events_and_lands_on_the_receipt(client, two_organizations):
    mine, theirs = two_organizations
    user = member(mine)
    client.force_login(user)

    response = client.post("/admin/ingest/archive/erase/", {"application": mine.pk, "user_id": GONE})

    receipt = AuditEntry.objects.get(action=AuditEntry.Action.EVENTS_ERASED)
    assert response.status_code == 302 and response["Location"].endswith(f"/auditentry/{receipt.pk}/change/")
    assert (receipt.actor, receipt.details["archived_events_erased"]) == (user, 2)
    assert Archive.objects.get(application=mine).row_count == 0
    assert Archive.objects.get(application=theirs).row_count == 2


def test_a_manager_cannot_erase_in_another_organization(client, two_organizations):
    mine, theirs = two_organizations
    client.force_login(member(mine))

    response = client.post("/admin/ingest/archive/erase/", {"application": theirs.pk, "user_id": GONE})

    assert response.status_code == 200 and "Select a valid choice" in response.content.decode()
    assert Archive.objects.get(application=theirs).row_count == 2


def test_a_viewer_cannot_erase(client, two_organizations):
    mine, _ = two_organizations
    client.force_login(member(mine, Membership.Role.VIEWER))

    assert client.get("/admin/ingest/archive/erase/").status_code == 403
    assert client.post("/admin/ingest/archive/erase/", {"application": mine.pk, "user_id": GONE}).status_code == 403
    assert Archive.objects.get(application=mine).row_count == 2


def test_a_viewer_cannot_run_the_verify_action(client, two_organizations):
    mine, _ = two_organizations
    client.force_login(member(mine, Membership.Role.VIEWER))
    archive = Archive.objects.get(application=mine)

    listing = client.get("/admin/ingest/archive/")
    response = client.post(
        "/admin/ingest/archive/", {"action": "verify_selected", "_selected_action": [archive.pk]}, follow=True
    )

    assert b"verify_selected" not in listing.content
    assert "archives match their manifests" not in response.content.decode()
    assert Archive.objects.get(pk=archive.pk).verified_at == archive.verified_at


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_erasing_from_the_admin_gives_up_while_archive_work_holds_the_lock(client, two_organizations, monkeypatch):
    mine, _ = two_organizations
    client.force_login(member(mine))
    monkeypatch.setattr(erasure, "REQUEST_LOCK_WAIT_SECONDS", 0.5)
    answers = []

    def erase():
        try:
            answers.append(client.post("/admin/ingest/archive/erase/", {"application": mine.pk, "user_id": GONE}))
        finally:
            connection.close()

    # An archive run, restore or export elsewhere holds the lock for longer than anyone should wait.
    with psycopg.connect(
        dbname=connection.settings_dict["NAME"],
        user=connection.settings_dict["USER"],
        host=connection.settings_dict["HOST"],
        port=connection.settings_dict["PORT"],
        autocommit=True,
    ) as other:
        other.execute("SELECT pg_advisory_lock(%s)", [LOCK_KEY])
        request = threading.Thread(target=erase)
        request.start()
        request.join(timeout=60)
        answered = not request.is_alive()
        other.execute("SELECT pg_advisory_unlock(%s)", [LOCK_KEY])
    request.join()

    assert answered
    assert answers[0].status_code == 200
    assert "Archive work is in progress" in answers[0].content.decode()
    assert Archive.objects.get(application=mine).row_count == 2
    assert not AuditEntry.objects.filter(action=AuditEntry.Action.EVENTS_ERASED).exists()
