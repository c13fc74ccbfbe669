"""Read tokens: issued per organization, shown once, stored hashed, audited; they read, never write."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from accounts.models import AuditEntry, ReadToken
from accounts.selectors import read_token_find
from accounts.services import read_token_issue, read_token_revoke
from telemetry.lib.crypto import token_hash
from tests.conftest import app_keys_create, make_event
from tests.factories import ApplicationFactory, OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db


def create_read_token(*args) -> str:
    out = StringIO()
    call_command("create_read_token", *args, stdout=out)
    return out.getvalue()


def test_a_read_token_is_rt_prefixed_and_stored_only_as_its_hash():
    issued = read_token_issue(organization=OrganizationFactory(), name="grafana")
    stored = ReadToken.objects.get(pk=issued.read_token.pk)

    assert issued.token.startswith("rt_") and len(issued.token) == 35
    assert stored.token_hash == token_hash(issued.token)
    assert stored.token_prefix == issued.token[:11]
    assert issued.token not in {
        str(value) for value in ReadToken.objects.values_list("name", "token_hash", "token_prefix").get(pk=stored.pk)
    }


def test_issuing_and_revoking_a_read_token_are_in_the_audit_log():
    organization, user = OrganizationFactory(), UserFactory()
    application = ApplicationFactory(organization=organization)
    issued = read_token_issue(organization=organization, name="notebook", applications=[application], by=user)
    read_token_revoke(read_token=issued.read_token, by=user)

    entries = list(AuditEntry.objects.filter(organization_id=organization.pk).order_by("id"))

    assert [entry.action for entry in entries] == ["read_token_issued", "read_token_revoked"]
    assert entries[0].actor_name == user.username
    assert entries[0].details == {"applications": [application.public_id]}
    assert "notebook" in entries[0].target and issued.token not in entries[0].target


def test_revoking_twice_leaves_one_audit_entry():
    issued = read_token_issue(organization=OrganizationFactory())
    read_token_revoke(read_token=issued.read_token)
    read_token_revoke(read_token=issued.read_token)

    assert AuditEntry.objects.filter(action="read_token_revoked").count() == 1
    assert read_token_find(token=issued.token) is None


def test_a_read_token_cannot_be_limited_to_another_organizations_application():
    with pytest.raises(ValueError):
        read_token_issue(organization=OrganizationFactory(), applications=[ApplicationFactory()])

    assert not ReadToken.objects.exists()


def test_an_ingest_token_is_not_a_read_token():
    keys = app_keys_create()

    assert read_token_find(token=keys.api_token) is None


def test_create_read_token_json_prints_exactly_one_object_with_a_working_token():
    organization = OrganizationFactory()

    output = create_read_token("--org", organization.public_id, "--name", "grafana", "--json")

    result = json.loads(output)
    assert set(result) == {"token"}
    assert output.strip() == json.dumps(result)
    found = read_token_find(token=result["token"])
    assert found.organization == organization and found.name == "grafana"


def test_create_read_token_takes_the_organization_by_name():
    organization = OrganizationFactory(name="Acme")

    token = json.loads(create_read_token("--org", "acme", "--json"))["token"]

    assert read_token_find(token=token).organization == organization


def test_create_read_token_refuses_an_unknown_organization_and_creates_none():
    with pytest.raises(CommandError, match="Unknown organization"):
        create_read_token("--org", "nobody", "--json")

    assert not ReadToken.objects.exists()


# --- a read token never writes ---------------------------------------------------------------


@pytest.fixture
def read_token_of():
    def issue(keys) -> str:
        return read_token_issue(organization=keys.application.organization).token

    return issue


def test_a_read_token_as_the_bearer_of_a_signed_batch_is_refused(signed_post, read_token_of):
    keys = app_keys_create()

    response = signed_post(keys, [make_event()], HTTP_AUTHORIZATION=f"Bearer {read_token_of(keys)}")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert not keys.application.events.exists()


def test_a_read_token_on_the_lambda_endpoint_is_an_unknown_credential(read_token_of):
    keys = app_keys_create()

    response = Client().post(
        f"/v1/lambda/{keys.org_id}/{keys.app_id}",
        data=b"[]",
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {read_token_of(keys)}",
    )

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


def test_a_read_token_as_a_malti_key_is_an_unknown_credential(read_token_of):
    keys = app_keys_create()

    response = Client().post(
        "/api/v1/ingest", data=b"{}", content_type="application/json", HTTP_X_API_KEY=read_token_of(keys)
    )

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
