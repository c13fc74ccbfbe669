"""One user id's events are erased from an application, stored and archived, with a receipt."""

import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command

from accounts.models import AuditEntry
from accounts.services import credential_issue
from ingest.models import Archive, Event
from ingest.retention.archive import archive_restore, archive_run
from ingest.retention.erasure import user_events_erase
from tests.conftest import AppKeys, signed_headers
from tests.ingest.archive_helpers import events_add, free_application

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("archive_dir")]

NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=40)
GONE = "client_" + "0" * 64
KEPT = "client_" + "1" * 64


@pytest.fixture
def history():
    """An application with both users' events archived (40 days old) and stored (a day old)."""
    application = free_application()
    events_add(application, OLD, 3, user_id=GONE)
    events_add(application, OLD + timedelta(minutes=5), 2, user_id=KEPT)
    archive_run(now=NOW)
    events_add(application, NOW - timedelta(days=1), 2, user_id=GONE)
    events_add(application, NOW - timedelta(days=1, minutes=5), 1, user_id=KEPT)
    return application


def test_erasure_removes_the_user_from_the_table_and_rewrites_the_archives(history, archive_dir):
    old = Archive.objects.get()
    old_path = old.path

    erasure = user_events_erase(application=history, user_id=GONE, via="command")

    assert (erasure.events, erasure.archived_events, erasure.archives_rewritten) == (2, 3, 1)
    assert set(Event.objects.values_list("user_id", flat=True)) == {KEPT}
    rewritten = Archive.objects.get()
    assert rewritten.row_count == 2 and rewritten.path != old_path
    assert not (archive_dir / old_path).exists() and not (archive_dir / f"{old_path}.manifest.json").exists()
    content = (archive_dir / rewritten.path).read_bytes()
    manifest = json.loads((archive_dir / rewritten.manifest_path).read_bytes())
    assert (manifest["rows"], manifest["checksum"]) == (2, f"sha256:{hashlib.sha256(content).hexdigest()}")
    assert archive_restore(archive=rewritten) == 2
    assert sorted(Event.objects.values_list("user_id", flat=True)) == [KEPT] * 3


def test_erasure_leaves_a_receipt_that_does_not_keep_the_user_id(history):
    user_events_erase(application=history, user_id=GONE, via="command")

    receipt = AuditEntry.objects.get(action=AuditEntry.Action.EVENTS_ERASED)
    assert receipt.organization_id == history.organization_id
    assert receipt.details == {
        "application": history.public_id,
        "user_id_sha256": hashlib.sha256(GONE.encode()).hexdigest(),
        "events_erased": 2,
        "archived_events_erased": 3,
        "archives_rewritten": 1,
        "export_files_to_rewrite": 0,
        "via": "command",
    }
    assert GONE not in json.dumps(receipt.details) + receipt.target


def test_erasure_touches_no_other_application(history):
    other = free_application()
    events_add(other, NOW - timedelta(days=1), 2, user_id=GONE)

    user_events_erase(application=history, user_id=GONE, via="command")

    assert Event.objects.filter(application=other, user_id=GONE).count() == 2


def test_erasing_again_finds_nothing_more(history):
    user_events_erase(application=history, user_id=GONE, via="command")
    checksum = Archive.objects.get().checksum

    erasure = user_events_erase(application=history, user_id=GONE, via="command")

    assert (erasure.events, erasure.archived_events, erasure.archives_rewritten) == (0, 0, 0)
    assert Archive.objects.get().checksum == checksum


def test_the_operator_command_erases_and_names_the_receipt(history, capsys):
    call_command(
        "erase_user_events", "--org", history.organization.public_id, "--app", history.public_id, "--user-id", GONE
    )

    assert "Erased 2 stored and 3 archived events" in capsys.readouterr().out
    assert not Event.objects.filter(user_id=GONE).exists()


def erasure_post(client, keys: AppKeys, body: bytes, *, bearer: str | None = None, **options):
    headers = signed_headers(keys, body, **options)
    if bearer is not None:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {bearer}"
    return client.post(
        f"/v1/erasure/{keys.org_id}/{keys.app_id}", data=body, content_type="application/json", **headers
    )


@pytest.fixture
def history_keys(history) -> AppKeys:
    issued = credential_issue(application=history)
    return AppKeys(application=history, api_token=issued.api_token, hmac_secret=issued.hmac_secret)


def test_the_api_erases_with_the_applications_token_and_answers_with_the_receipt(client, history_keys):
    response = erasure_post(client, history_keys, json.dumps({"user_id": GONE}).encode(), bearer=history_keys.api_token)

    assert response.status_code == 200
    body = response.json()
    receipt = AuditEntry.objects.get(action=AuditEntry.Action.EVENTS_ERASED)
    assert body["receipt_id"] == receipt.pk
    assert (body["events_erased"], body["archived_events_erased"], body["archives_rewritten"]) == (2, 3, 1)
    assert receipt.details["via"] == "api"
    assert not Event.objects.filter(user_id=GONE).exists()


def test_the_api_refuses_a_request_without_the_token(client, history_keys):
    response = erasure_post(client, history_keys, json.dumps({"user_id": GONE}).encode())

    assert response.status_code == 401
    assert Event.objects.filter(user_id=GONE).count() == 2


def test_the_api_refuses_another_applications_token(client, history_keys):
    other = credential_issue(application=free_application())

    response = erasure_post(client, history_keys, json.dumps({"user_id": GONE}).encode(), bearer=other.api_token)

    assert response.status_code == 401
    assert Event.objects.filter(user_id=GONE).count() == 2


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"[]",
        b"{}",
        b'{"user_id": ""}',
        b'{"user_id": 7}',
        b'{"user_id": "a\\u0000b"}',
        json.dumps({"user_id": "x" * 72}).encode(),
        b'{"user_id": "u", "extra": 1}',
        b"\xff",
    ],
)
def test_the_api_answers_a_malformed_body_with_400(client, history_keys, body):
    response = erasure_post(client, history_keys, body, bearer=history_keys.api_token)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"
    assert not AuditEntry.objects.filter(action=AuditEntry.Action.EVENTS_ERASED).exists()


def test_an_unreadable_archive_is_named_in_the_receipt_and_flagged(history, archive_dir, client, history_keys):
    broken = Archive.objects.get()
    (archive_dir / broken.path).write_bytes(b"not what the manifest says")

    response = erasure_post(client, history_keys, json.dumps({"user_id": GONE}).encode(), bearer=history_keys.api_token)

    assert response.status_code == 200
    assert (response.json()["status"], response.json()["archives_unreadable"]) == ("partial", 1)
    receipt = AuditEntry.objects.get(action=AuditEntry.Action.EVENTS_ERASED)
    assert receipt.details["archives_unreadable"] == [broken.pk]
    assert Archive.objects.get().checksum_ok is False
    assert not Event.objects.filter(user_id=GONE).exists()


def test_the_api_answers_503_rather_than_wait_behind_archive_work(client, history_keys, monkeypatch):
    import psycopg
    from django.db import connection

    from ingest import apis
    from ingest.retention.archive import LOCK_KEY

    monkeypatch.setattr(apis, "ERASURE_LOCK_WAIT_SECONDS", 0.5)
    db = connection.settings_dict
    with psycopg.connect(host=db["HOST"], port=db["PORT"], user=db["USER"], dbname=db["NAME"]) as archive_run:
        archive_run.execute("SELECT pg_advisory_lock(%s)", [LOCK_KEY])  # an archive run holds the lock

        response = erasure_post(
            client, history_keys, json.dumps({"user_id": GONE}).encode(), bearer=history_keys.api_token
        )

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "busy"
    assert response["Retry-After"] == "60"
    assert Event.objects.filter(user_id=GONE).exists()
