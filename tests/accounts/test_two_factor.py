"""Two-factor with allauth.mfa: enrolment, sign-in with a code, recovery codes, and who must use it.

Codes are computed here from the secret with allauth's own TOTP functions (RFC 6238), as an
authenticator app would."""

import time

import pytest
from allauth.mfa import app_settings as mfa_settings
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import TOTP, format_hotp_value, generate_totp_secret, hotp_value
from django.urls import reverse

from accounts.models import AuditEntry, Membership
from tests.accounts.conftest import PASSWORD, member_create
from tests.factories import OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db


def code_for(secret: str, periods_ahead: int = 0) -> str:
    counter = int(time.time()) // mfa_settings.TOTP_PERIOD + periods_ahead
    return format_hotp_value(hotp_value(secret, counter))


@pytest.fixture
def organization():
    return OrganizationFactory(name="Acme")


@pytest.fixture
def member(organization):
    return member_create(organization=organization, role="admin")


@pytest.fixture
def secret(member):
    """The member's authenticator app, set up, with recovery codes."""
    secret = generate_totp_secret()
    TOTP.activate(member, secret)
    RecoveryCodes.activate(member)
    return secret


def sign_in(client, user):
    return client.post(reverse("admin:login"), {"username": user.username, "password": PASSWORD, "next": "/admin/"})


def confirm_password(client):
    """allauth asks for the password again before two-factor is set up, however recent the sign-in."""
    return client.post(reverse("account_reauthenticate"), {"password": PASSWORD})


def enter_code(client, code):
    return client.post(reverse("mfa_authenticate"), {"code": code})


def test_enrolment_with_a_code_from_the_shown_secret_turns_two_factor_on(
    client, member, django_capture_on_commit_callbacks
):
    sign_in(client, member)
    asked = client.get(reverse("mfa_activate_totp"))
    confirm_password(client)

    page = client.get(reverse("mfa_activate_totp"))
    secret = client.session["mfa.totp.secret"]
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("mfa_activate_totp"), {"code": code_for(secret)})

    assert asked.status_code == 302 and asked["Location"].startswith(reverse("account_reauthenticate"))
    assert page.status_code == 200 and secret.encode() in page.content
    assert response.status_code == 302
    assert set(Authenticator.objects.filter(user=member).values_list("type", flat=True)) == {"totp", "recovery_codes"}
    assert AuditEntry.objects.filter(action="second_factor_added", actor=member, details={"type": "totp"}).exists()


def test_enrolment_refuses_a_wrong_code(client, member):
    sign_in(client, member)
    confirm_password(client)
    client.get(reverse("mfa_activate_totp"))
    secret = client.session["mfa.totp.secret"]
    wrong = f"{(int(code_for(secret)) + 1) % 1_000_000:06d}"

    response = client.post(reverse("mfa_activate_totp"), {"code": wrong})

    assert response.status_code == 200
    assert not Authenticator.objects.filter(user=member).exists()


def test_sign_in_asks_for_a_code_after_the_right_password(client, member, secret):
    after_password = sign_in(client, member)
    before_code = client.get("/admin/")

    after_code = enter_code(client, code_for(secret))

    assert after_password.status_code == 302 and after_password["Location"] == reverse("mfa_authenticate")
    assert before_code.status_code == 302 and before_code["Location"].startswith(reverse("admin:login"))
    assert after_code.status_code == 302 and after_code["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200
    assert AuditEntry.objects.filter(action="sign_in", actor=member).count() == 1


def test_a_wrong_code_is_refused_and_audited(client, member, secret):
    sign_in(client, member)
    wrong = f"{(int(code_for(secret)) + 1) % 1_000_000:06d}"

    response = enter_code(client, wrong)

    assert response.status_code == 200
    assert client.get("/admin/").status_code == 302
    assert not AuditEntry.objects.filter(action="sign_in").exists()
    assert AuditEntry.objects.filter(action="second_factor_failed", actor=member).count() == 1


def test_a_security_key_answer_refused_at_sign_in_is_audited(client, member, secret):
    sign_in(client, member)

    response = client.post(reverse("mfa_authenticate"), {"credential": '{"id": "eA", "type": "public-key"}'})

    assert response.status_code == 200
    assert client.get("/admin/").status_code == 302
    [failed] = AuditEntry.objects.filter(action="second_factor_failed", actor=member)
    assert failed.details == {"type": "webauthn"}


def test_a_code_is_refused_even_when_right_after_repeated_wrong_codes(client, member, secret, settings):
    settings.ACCOUNT_RATE_LIMITS = {"login_failed": "100/m/ip,3/900s/key"}
    sign_in(client, member)
    wrong = f"{(int(code_for(secret)) + 1) % 1_000_000:06d}"
    for _ in range(3):
        enter_code(client, wrong)

    response = enter_code(client, code_for(secret))

    assert response.status_code == 200
    assert client.get("/admin/").status_code == 302


def test_a_code_works_once(client, member, secret):
    code = code_for(secret)
    sign_in(client, member)
    enter_code(client, code)
    client.logout()

    sign_in(client, member)
    response = enter_code(client, code)

    assert response.status_code == 200
    assert client.get("/admin/").status_code == 302


def test_a_recovery_code_signs_in_once(client, member, secret):
    code = RecoveryCodes(Authenticator.objects.get(user=member, type="recovery_codes")).get_unused_codes()[0]
    sign_in(client, member)
    first = enter_code(client, code)
    client.logout()

    sign_in(client, member)
    second = enter_code(client, code)

    assert first.status_code == 302
    assert second.status_code == 200
    assert client.get("/admin/").status_code == 302


def test_a_member_of_an_organization_requiring_two_factor_is_sent_to_set_it_up(client, member, organization):
    organization.require_two_factor = True
    organization.save()
    sign_in(client, member)

    pages = [
        client.get(path)
        for path in (
            "/admin/",
            reverse("dashboards:organization", args=[organization.public_id]),
            reverse("dashboards:overview"),
        )
    ]

    assert [page.status_code for page in pages] == [403] * 3
    for page in pages:
        assert b"Two-factor authentication needed" in page.content
        assert b"<strong>Acme</strong>\n  requires its members to use two-factor authentication" in page.content
        assert reverse("mfa_activate_totp").encode() in page.content
    confirm_password(client)
    assert client.get(reverse("mfa_activate_totp")).status_code == 200


def test_once_set_up_the_member_reaches_the_organization(client, member, organization):
    organization.require_two_factor = True
    organization.save()
    sign_in(client, member)
    confirm_password(client)
    client.get(reverse("mfa_activate_totp"))
    client.post(reverse("mfa_activate_totp"), {"code": code_for(client.session["mfa.totp.secret"])})

    assert client.get("/admin/").status_code == 200
    assert client.get(reverse("dashboards:organization", args=[organization.public_id])).status_code == 200


def test_an_owner_requires_two_factor_of_the_members_and_it_is_audited(client, organization):
    owner = UserFactory()
    Membership.objects.create(user=owner, organization=organization, role="owner")
    client.force_login(owner)

    client.post(
        reverse("admin:accounts_organization_change", args=[organization.pk]),
        {
            "name": organization.name,
            "contact_email": "",
            "require_two_factor": "on",
            "memberships-TOTAL_FORMS": "0",
            "memberships-INITIAL_FORMS": "0",
            "applications-TOTAL_FORMS": "0",
            "applications-INITIAL_FORMS": "0",
        },
    )

    organization.refresh_from_db()
    assert organization.require_two_factor
    assert AuditEntry.objects.get(action="organization_changed").details["require_two_factor"] == [False, True]
    assert client.get("/admin/").status_code == 403


def test_members_of_other_organizations_are_not_asked(client, member, organization):
    OrganizationFactory(require_two_factor=True)
    sign_in(client, member)

    assert client.get("/admin/").status_code == 200


@pytest.mark.parametrize("required, status", [(True, 403), (False, 200)])
def test_the_setting_requires_two_factor_of_superusers(client, settings, required, status):
    settings.SECURITY_SUPERUSERS_REQUIRE_TWO_FACTOR = required
    client.force_login(UserFactory(is_superuser=True))

    assert client.get("/admin/").status_code == status


def test_preferences_show_whether_two_factor_is_on(client, member, secret):
    client.force_login(member)

    page = client.get(reverse("dashboards:preferences"))

    assert page.status_code == 200
    assert reverse("mfa_index").encode() in page.content
    assert b"Two-factor authentication</a>:\n      on" in page.content
