"""Security keys and passkeys (WebAuthn, allauth.mfa) as the service serves them: offered beside the
authenticator app, their scripts from this service's own static files, and a malformed answer from
a browser refused with a message, never an error. Enrolment and sign-in with a key are played by
Chromium's virtual authenticator in tests/browser/test_identity.py."""

import re

import pytest
from allauth.mfa.models import Authenticator
from django.urls import reverse

from accounts.models import AuditEntry
from tests.accounts.conftest import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture
def signed_in(client, member):
    assert client.post(reverse("admin:login"), {"username": member.username, "password": PASSWORD}).status_code == 302
    # allauth asks for the password again before a factor is added, however recent the sign-in.
    client.post(reverse("account_reauthenticate"), {"password": PASSWORD})
    return client


def test_two_factor_offers_security_keys_beside_the_authenticator_app(signed_in):
    page = signed_in.get(reverse("mfa_index"))

    assert page.status_code == 200
    assert reverse("mfa_activate_totp").encode() in page.content
    assert reverse("mfa_add_webauthn").encode() in page.content


def test_the_add_page_runs_only_this_services_own_scripts(signed_in):
    page = signed_in.get(reverse("mfa_add_webauthn"))

    text = page.content.decode()
    assert page.status_code == 200 and "Add a security key or passkey" in text
    sources = re.findall(r'<script src="([^"]+)"', text)
    assert sources and all(source.startswith("/static/") for source in sources)
    assert any("mfa/js/webauthn" in source for source in sources)
    # Every inline script is data (allauth's options and ids), which the policy does not run.
    inline_types = re.findall(r"<script(?! src)([^>]*)>", text)
    assert inline_types and all('type="application/json"' in attributes for attributes in inline_types)
    assert "script-src 'self'" in page["Content-Security-Policy"]


UNREADABLE = "The security key&#x27;s answer could not be read. Try again."
# A malformed answer, and what the add form and the passkey sign-in say (allauth's own words where
# it catches the problem itself).
MALFORMED = [
    ("not json", "Enter a valid JSON.", "Enter a valid JSON."),
    ("{}", "This field is required.", "This field is required."),
    ("[1, 2]", UNREADABLE, UNREADABLE),
    ('{"id": "eA", "type": "public-key", "response": {}}', UNREADABLE, UNREADABLE),
    ('{"id": "eA", "rawId": "eQ", "type": "public-key", "response": {}}', UNREADABLE, "Incorrect code."),
    (
        '{"id": "eA", "rawId": "eA", "type": "public-key", "response": {"clientDataJSON": "!!"}}',
        "Incorrect code.",
        "Incorrect code.",
    ),
]


@pytest.mark.parametrize("credential, message, _", MALFORMED)
def test_a_malformed_answer_from_the_browser_adds_no_key(signed_in, member, credential, message, _):
    response = signed_in.post(reverse("mfa_add_webauthn"), {"name": "Desk key", "credential": credential})

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Authenticator.objects.filter(user=member, type="webauthn").exists()
    assert not AuditEntry.objects.filter(action="second_factor_added").exists()


@pytest.mark.parametrize("credential, _, message", MALFORMED)
def test_a_malformed_passkey_sign_in_is_refused_with_a_message(client, credential, _, message):
    response = client.post(reverse("mfa_login_webauthn"), {"credential": credential})

    assert response.status_code == 302 and response["Location"] == reverse("account_login")
    page = client.get(response["Location"])
    assert page.status_code == 200 and message in page.content.decode()
    assert client.get("/admin/").status_code == 302


def test_both_sign_in_pages_offer_a_passkey(client):
    for url in (reverse("admin:login"), reverse("account_login")):
        page = client.get(url)

        assert page.status_code == 200
        assert b'id="passkey_login"' in page.content
        assert f'action="{reverse("mfa_login_webauthn")}"'.encode() in page.content


def test_passkeys_sign_in_only_when_the_setting_allows_it(client, settings):
    settings.MFA_PASSKEY_LOGIN_ENABLED = False

    page = client.get(reverse("account_login"))

    assert page.status_code == 200 and b'id="passkey_login"' not in page.content
