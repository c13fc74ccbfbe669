import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client

from accounts.models import Application, Credential, Organization
from telemetry.lib.crypto import token_hash
from tests.conftest import make_event

pytestmark = pytest.mark.django_db


def create_app(*args) -> dict:
    out = StringIO()
    call_command("create_app", *args, "--json", stdout=out)
    return json.loads(out.getvalue())


def test_create_app_json_prints_exactly_one_object_with_working_credentials():
    result = create_app("--org", "Acme", "--name", "web")

    assert set(result) == {"org_id", "app_id", "api_token", "hmac_secret", "ingest_url"}
    assert result["org_id"].startswith("org_")
    assert result["app_id"].startswith("app_") and len(result["app_id"]) == 12
    assert result["api_token"].startswith("tk_") and len(result["api_token"]) == 35
    assert result["ingest_url"].endswith(f"/v1/ingest/{result['org_id']}/{result['app_id']}")
    application = Application.objects.get(public_id=result["app_id"])
    assert application.organization.name == "Acme"
    assert application.organization.tier.slug == "self-hosted"


def test_create_app_reuses_an_organization_given_by_id_or_name():
    first = create_app("--org", "Acme", "--name", "web")
    by_id = create_app("--org", first["org_id"], "--name", "cli")
    by_name = create_app("--org", "acme", "--name", "ios")

    assert first["org_id"] == by_id["org_id"] == by_name["org_id"]
    assert Organization.objects.count() == 1


def test_create_app_puts_a_new_organization_on_the_chosen_tier():
    result = create_app("--org", "Small", "--name", "web", "--tier", "free")

    assert Organization.objects.get(public_id=result["org_id"]).tier.slug == "free"


def test_create_app_refuses_an_unknown_tier():
    with pytest.raises(CommandError, match="Unknown tier 'gold'"):
        call_command("create_app", "--org", "Acme", "--name", "web", "--tier", "gold")
    assert not Organization.objects.exists()


def test_secret_and_token_are_not_readable_from_the_database(signed_post):
    result = create_app("--org", "Acme", "--name", "web")

    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM accounts_credential")
        dump = repr(cursor.fetchall())
    assert result["hmac_secret"] not in dump
    assert result["api_token"] not in dump
    credential = Credential.objects.get()
    assert credential.token_hash == token_hash(result["api_token"])
    assert credential.token_prefix == result["api_token"][:11]


def test_credentials_printed_by_create_app_sign_an_accepted_batch(signed_post):
    from tests.conftest import AppKeys

    result = create_app("--org", "Acme", "--name", "web")
    keys = AppKeys(Application.objects.get(public_id=result["app_id"]), result["api_token"], result["hmac_secret"])

    response = signed_post(keys, [make_event()], HTTP_AUTHORIZATION=f"Bearer {result['api_token']}")

    assert response.status_code == 200


def test_demo_setup_creates_the_demo_once_and_prints_it_each_time(settings, tmp_path):
    settings.DATA_DIR = tmp_path
    first, second = StringIO(), StringIO()

    call_command("demo_setup", stdout=first)
    call_command("demo_setup", stdout=second)

    demo = json.loads((tmp_path / "demo-credentials.json").read_text())
    assert Application.objects.filter(public_id=demo["app_id"]).count() == 1
    assert Application.objects.count() == 1
    for out in (first.getvalue(), second.getvalue()):
        assert demo["password"] in out and demo["hmac_secret"] in out and "curl -sS -X POST" in out
    assert (tmp_path / "demo-credentials.json").stat().st_mode & 0o777 == 0o600


def test_create_app_with_a_malti_service_issues_a_malti_key_for_it():
    result = create_app("--org", "Acme", "--name", "orders", "--malti-service", "orders-api")

    assert result["malti_service"] == "orders-api"
    assert Credential.objects.get(token_hash=token_hash(result["api_token"])).service_name == "orders-api"
    response = Client().post(
        "/api/v1/ingest",
        content_type="application/json",
        HTTP_X_API_KEY=result["api_token"],
        data=json.dumps(
            {
                "requests": [
                    {
                        "service": "orders-api",
                        "method": "GET",
                        "endpoint": "/",
                        "status": 200,
                        "response_time": 1,
                        "consumer": "anonymous",
                        "created_at": "2026-11-25T10:00:00Z",
                    }
                ]
            }
        ),
    )
    assert response.json() == {"message": "1 requests stored", "count": 1, "service": "orders-api"}
