"""Archives in the admin: each member sees their organizations' only; managers erase a user's events."""

from datetime import UTC, datetime, timedelta

import pytest

from accounts.models import AuditEntry, Membership
from ingest.archive import archive_run
from ingest.models import Archive
from tests.factories import UserFactory
from tests.ingest.archive_helpers import events_add, free_application

pytestmark = pytest.mark.django_db

NOW = datetime.now(UTC)
GONE = "client_" + "0" * 64


@pytest.fixture(autouse=True)
def archive_dir(settings, tmp_path):
    settings.STORAGES = {**settings.STORAGES, "archives": {
        "BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": tmp_path / "archives"}}}


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

    response = client.post("/admin/ingest/archive/", {"action": "verify_selected", "_selected_action": [archive.pk]},
                           follow=True)

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
