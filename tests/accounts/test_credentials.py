from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.ingest_targets import credentials_generation
from accounts.models import Application, AuditEntry, Credential, Membership
from accounts.services import credential_revoke, credential_rotate
from ingest.models import Event
from tests.conftest import AppKeys, make_event
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_rotation_keeps_the_previous_credential_working_for_the_overlap(app_keys, signed_post):
    issued = credential_rotate(application=app_keys.application, overlap=timedelta(hours=24))
    new_keys = AppKeys(app_keys.application, issued.api_token, issued.hmac_secret)

    assert signed_post(app_keys, [make_event()]).status_code == 200
    assert signed_post(new_keys, [make_event()]).status_code == 200
    previous = Credential.objects.get(pk=issued.expired_previous[0].pk)
    assert timedelta(hours=23) < previous.expires_at - timezone.now() <= timedelta(hours=24)


def test_previous_credential_stops_when_the_overlap_ends(app_keys, signed_post):
    issued = credential_rotate(application=app_keys.application, overlap=timedelta(0))

    assert signed_post(app_keys, [make_event()]).status_code == 401
    assert (
        signed_post(AppKeys(app_keys.application, issued.api_token, issued.hmac_secret), [make_event()]).status_code
        == 200
    )


def test_revoked_credential_answers_401_at_once_in_this_process(app_keys, signed_post):
    assert signed_post(app_keys, [make_event()]).status_code == 200

    credential_revoke(credential=app_keys.application.credentials.get())

    assert signed_post(app_keys, [make_event()]).status_code == 401


def test_accepted_request_records_when_its_credential_was_last_used(app_keys, signed_post):
    from accounts import services

    services._last_used_written.clear()
    signed_post(app_keys, [make_event()])

    assert app_keys.application.credentials.get().last_used_at is not None


def test_a_request_refused_by_the_quota_does_not_count_as_its_credential_used(signed_post):
    from accounts import services
    from tests.ingest.test_limits import keys_on, tier

    keys = keys_on(tier(monthly_event_quota=0))
    services._last_used_written.clear()

    assert signed_post(keys, [make_event()]).status_code == 429
    assert keys.application.credentials.get().last_used_at is None


def owner_client(client, application):
    user = UserFactory(is_staff=True)
    Membership.objects.create(user=user, organization=application.organization, role="owner")
    client.force_login(user)
    return user


def test_application_delete_confirmation_counts_its_events(app_keys, signed_post, client):
    signed_post(app_keys, [make_event(), make_event(), make_event()])
    owner_client(client, app_keys.application)

    response = client.get(reverse("admin:accounts_application_delete", args=[app_keys.application.pk]))

    assert response.status_code == 200
    assert b"3 events" in response.content
    assert b"1 credential<" in response.content


def test_deleting_an_application_deletes_its_events_and_is_audited(app_keys, signed_post, client):
    signed_post(app_keys, [make_event(), make_event()])
    user = owner_client(client, app_keys.application)

    response = client.post(
        reverse("admin:accounts_application_delete", args=[app_keys.application.pk]), {"post": "yes"}
    )

    assert response.status_code == 302
    assert not Application.objects.exists()
    assert not Event.objects.exists()
    entry = AuditEntry.objects.get(action="application_deleted")
    assert (entry.actor, entry.details) == (user, {"credentials": 1, "events": 2})


def test_deleting_an_organization_deletes_everything_under_it(app_keys, signed_post, client):
    signed_post(app_keys, [make_event()])
    owner_client(client, app_keys.application)
    organization = app_keys.application.organization

    confirm = client.get(reverse("admin:accounts_organization_delete", args=[organization.pk]))
    response = client.post(reverse("admin:accounts_organization_delete", args=[organization.pk]), {"post": "yes"})

    assert b"1 event<" in confirm.content and b"1 application<" in confirm.content
    assert response.status_code == 302
    assert not Event.objects.exists() and not Credential.objects.exists() and not Membership.objects.exists()


def test_revoking_a_revoked_credential_changes_nothing(app_keys, django_capture_on_commit_callbacks):
    credential = app_keys.application.credentials.get()
    with django_capture_on_commit_callbacks(execute=True):
        credential_revoke(credential=credential)
    revoked_at, generation = credential.revoked_at, credentials_generation()

    with django_capture_on_commit_callbacks(execute=True):
        credential_revoke(credential=Credential.objects.get(pk=credential.pk))

    assert Credential.objects.get(pk=credential.pk).revoked_at == revoked_at
    assert credentials_generation() == generation
    assert AuditEntry.objects.filter(action="credential_revoked").count() == 1
