import os
import secrets
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.core.management import call_command
from django.urls import reverse

from accounts.models import AuditEntry, Membership
from telemetry.lib import crypto
from tests.conftest import make_event
from tests.factories import OrganizationFactory, UserFactory

ROOT = Path(__file__).resolve().parents[2]


def test_deploy_check_is_clean_with_the_production_settings_of_env_example(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        APP_DATA_DIR=str(tmp_path),
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(60),
        APP_SECURITY__HTTPS="true",
        ALLOWED_HOSTS="telemetry.example.com",
        APP_SECURITY__CREDENTIALS_KEYS=Fernet.generate_key().decode(),
    )

    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.django_db
def test_sign_in_is_refused_after_repeated_failures_even_with_the_right_password(client, settings):
    settings.AXES_FAILURE_LIMIT = 3
    user = UserFactory(is_staff=True)
    user.set_password("right-password-123")
    user.save()
    url = reverse("admin:login")

    for _ in range(3):
        client.post(url, {"username": user.username, "password": "wrong"})
    locked = client.post(url, {"username": user.username, "password": "right-password-123"})

    assert locked.status_code == 429
    assert b"Too many failed sign-ins" in locked.content
    assert AuditEntry.objects.filter(action="sign_in_failed", target=user.username).count() >= 3
    assert not AuditEntry.objects.filter(action="sign_in", actor=user).exists()


@pytest.mark.django_db
def test_successful_sign_in_is_audited_with_its_source(client):
    user = UserFactory()
    Membership.objects.create(user=user, organization=OrganizationFactory(), role="viewer")
    user.set_password("right-password-123")
    user.save()

    client.post(
        reverse("admin:login"),
        {"username": user.username, "password": "right-password-123"},
        REMOTE_ADDR="203.0.113.7",
        HTTP_USER_AGENT="pytest-browser",
    )

    entry = AuditEntry.objects.get(action="sign_in")
    assert (entry.actor, entry.source_ip, entry.user_agent) == (user, "203.0.113.7", "pytest-browser")


@pytest.mark.django_db
def test_rotating_the_encryption_key_keeps_every_credential_working(app_keys, signed_post, settings):
    new_key = Fernet.generate_key().decode()
    settings.CREDENTIALS_ENCRYPTION_KEYS = [new_key, "derived"]
    out = StringIO()

    call_command("rotate_credentials_key", stdout=out)
    settings.CREDENTIALS_ENCRYPTION_KEYS = [new_key]
    settings.SECRET_KEY = "another-secret-key-so-the-old-derived-key-is-gone"

    assert "1 secrets now encrypted" in out.getvalue()
    assert signed_post(app_keys, [make_event()]).status_code == 200


def test_the_key_derived_from_secret_key_is_retired_once_the_keys_leave_it_out(settings):
    settings.CREDENTIALS_ENCRYPTION_KEYS = []
    under_derived = crypto.encrypt("a secret")
    new_key = Fernet.generate_key().decode()

    settings.CREDENTIALS_ENCRYPTION_KEYS = [new_key, "derived"]
    during_rotation = crypto.decrypt(under_derived)
    settings.CREDENTIALS_ENCRYPTION_KEYS = [new_key]

    assert during_rotation == "a secret"
    with pytest.raises(InvalidToken):
        crypto.decrypt(under_derived)
