"""Every role against its own organization and another one, for each admin operation."""

import re
from datetime import timedelta

import pytest
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.models import Application, AuditEntry, Credential, Membership, Organization, Tier
from accounts.services import audit_record, credential_issue, credential_revoke, credential_rotate
from tests.factories import ApplicationFactory, OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db

ROLES = ["owner", "admin", "viewer"]


@pytest.fixture
def world():
    own, other = OrganizationFactory(name="Own Org"), OrganizationFactory(name="Other Org")
    own_app, other_app = (
        ApplicationFactory(organization=own, name="own-app"),
        ApplicationFactory(organization=other, name="other-app"),
    )
    return {
        "own": own,
        "other": other,
        "own_app": own_app,
        "other_app": other_app,
        "own_credential": credential_issue(application=own_app).credential,
        "other_credential": credential_issue(application=other_app).credential,
    }


def member(client, world, role):
    user = UserFactory(is_staff=True)
    Membership.objects.create(user=user, organization=world["own"], role=role)
    client.force_login(user)
    return user


def expected(role, organization, *, allowed_roles=("owner", "admin"), success=200):
    if organization == "other":
        return 404
    return success if role in allowed_roles else 403


@pytest.mark.parametrize("role", ROLES)
def test_application_list_shows_only_own_organization(client, world, role):
    member(client, world, role)

    response = client.get(reverse("admin:accounts_application_changelist"))

    assert response.status_code == 200
    assert b"own-app" in response.content
    assert b"other-app" not in response.content
    assert b"Other Org" not in response.content


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("org", ["own", "other"])
def test_application_page_is_visible_to_members_and_404_to_others(client, world, role, org):
    member(client, world, role)

    response = client.get(reverse("admin:accounts_application_change", args=[world[f"{org}_app"].pk]))

    assert response.status_code == (200 if org == "own" else 404)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("org", ["own", "other"])
def test_application_change_needs_owner_or_admin(client, world, role, org):
    member(client, world, role)
    application = world[f"{org}_app"]

    response = client.post(
        reverse("admin:accounts_application_change", args=[application.pk]),
        {"name": "renamed", "credentials-TOTAL_FORMS": "0", "credentials-INITIAL_FORMS": "0"},
    )

    assert response.status_code == expected(role, org, success=302)
    application.refresh_from_db()
    assert (application.name == "renamed") == (response.status_code == 302)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("org", ["own", "other"])
def test_application_delete_needs_owner_or_admin(client, world, role, org):
    member(client, world, role)
    application = world[f"{org}_app"]

    response = client.post(reverse("admin:accounts_application_delete", args=[application.pk]), {"post": "yes"})

    assert response.status_code == expected(role, org, success=302)
    assert Application.objects.filter(pk=application.pk).exists() == (response.status_code != 302)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("org", ["own", "other"])
@pytest.mark.parametrize("operation", ["issue", "rotate"])
def test_issue_and_rotate_need_owner_or_admin(client, world, role, org, operation):
    member(client, world, role)
    application = world[f"{org}_app"]

    response = client.post(
        reverse(f"admin:accounts_application_{operation}", args=[application.pk]), {"overlap_hours": "24"}
    )

    assert response.status_code == expected(role, org)
    assert Credential.objects.filter(application=application).count() == (2 if response.status_code == 200 else 1)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("org", ["own", "other"])
def test_revoke_needs_owner_or_admin(client, world, role, org):
    member(client, world, role)
    credential = world[f"{org}_credential"]

    response = client.post(reverse("admin:accounts_credential_revoke", args=[credential.pk]))

    assert response.status_code == expected(role, org, success=302)
    credential.refresh_from_db()
    assert (credential.revoked_at is not None) == (response.status_code == 302)


@pytest.mark.parametrize("role", ROLES)
def test_credential_list_shows_only_own_organization(client, world, role):
    member(client, world, role)

    response = client.get(reverse("admin:accounts_credential_changelist"))

    assert world["own_credential"].token_prefix.encode() in response.content
    assert world["other_credential"].token_prefix.encode() not in response.content


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("org", ["own", "other"])
def test_organization_change_needs_owner(client, world, role, org):
    member(client, world, role)
    organization = world[org]

    response = client.post(
        reverse("admin:accounts_organization_change", args=[organization.pk]),
        {
            "name": "Renamed",
            "contact_email": "",
            "memberships-TOTAL_FORMS": "0",
            "memberships-INITIAL_FORMS": "0",
            "applications-TOTAL_FORMS": "0",
            "applications-INITIAL_FORMS": "0",
        },
    )

    assert response.status_code == expected(role, org, allowed_roles=("owner",), success=302)


@pytest.mark.parametrize("role", ROLES)
def test_non_superusers_cannot_change_tiers_or_add_organizations(client, world, role):
    member(client, world, role)

    assert client.get(reverse("admin:accounts_tier_changelist")).status_code == 403
    assert client.get(reverse("admin:accounts_organization_add")).status_code == 403


@pytest.mark.parametrize("role", ROLES)
def test_audit_log_shows_only_own_organization(client, world, role):
    member(client, world, role)

    response = client.get(reverse("admin:accounts_auditentry_changelist"))

    assert response.status_code == 200
    assert b"own-app" in response.content
    assert b"other-app" not in response.content


def test_superuser_reaches_every_organization(client, world):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))

    for org in ("own", "other"):
        assert (
            client.get(reverse("admin:accounts_application_change", args=[world[f"{org}_app"].pk])).status_code == 200
        )
        assert (
            client.post(reverse("admin:accounts_application_issue", args=[world[f"{org}_app"].pk])).status_code == 200
        )


def test_every_change_is_in_the_audit_log(client, world):
    user = member(client, world, "owner")
    application = world["own_app"]

    client.post(reverse("admin:accounts_application_issue", args=[application.pk]))
    client.post(reverse("admin:accounts_application_rotate", args=[application.pk]), {"overlap_hours": "1"})
    client.post(reverse("admin:accounts_credential_revoke", args=[world["own_credential"].pk]))

    actions = list(AuditEntry.objects.filter(actor=user).values_list("action", flat=True))
    assert sorted(actions) == ["credential_issued", "credential_revoked", "credential_rotated", "sign_in"]
    changes = AuditEntry.objects.filter(actor=user).exclude(action="sign_in")
    assert set(changes.values_list("organization_id", flat=True)) == {world["own"].pk}


def bulk_delete(client, model, objects, **extra):
    return client.post(
        reverse(f"admin:accounts_{model}_changelist"),
        {"action": "delete_selected", "_selected_action": [obj.pk for obj in objects], **extra},
    )


def test_bulk_delete_is_refused_when_one_object_is_of_an_organization_the_user_only_views(client, world):
    user = member(client, world, "admin")
    Membership.objects.create(user=user, organization=world["other"], role="viewer")

    response = bulk_delete(client, "application", [world["own_app"], world["other_app"]], post="yes")

    assert response.status_code == 403
    assert Application.objects.filter(pk__in=[world["own_app"].pk, world["other_app"].pk]).count() == 2
    assert not AuditEntry.objects.filter(action="application_deleted").exists()


def test_bulk_delete_confirmation_names_the_objects_the_user_may_not_delete(client, world):
    user = member(client, world, "admin")
    Membership.objects.create(user=user, organization=world["other"], role="viewer")

    response = bulk_delete(client, "application", [world["own_app"], world["other_app"]])

    assert response.status_code == 200
    assert b"Cannot delete" in response.content
    assert b"other-app" in response.content
    assert b'name="post"' not in response.content


def test_bulk_delete_of_memberships_needs_owner_of_each_organization(client, world):
    user = member(client, world, "owner")
    Membership.objects.create(user=user, organization=world["other"], role="admin")
    other_member = Membership.objects.create(user=UserFactory(), organization=world["other"], role="viewer")

    response = bulk_delete(client, "membership", [other_member], post="yes")

    assert response.status_code == 403
    assert Membership.objects.filter(pk=other_member.pk).exists()


def test_bulk_delete_of_objects_the_user_manages_deletes_and_audits_them(client, world):
    member(client, world, "admin")
    second = ApplicationFactory(organization=world["own"], name="second-app")

    response = bulk_delete(client, "application", [world["own_app"], second], post="yes")

    assert response.status_code == 302
    assert not Application.objects.filter(organization=world["own"]).exists()
    assert AuditEntry.objects.filter(action="application_deleted").count() == 2


def test_deleting_a_queryset_refuses_all_of_it_when_one_object_is_not_deletable(world, rf):
    request = rf.post("/")
    request.user = UserFactory(is_staff=True)
    Membership.objects.create(user=request.user, organization=world["own"], role="admin")
    Membership.objects.create(user=request.user, organization=world["other"], role="viewer")

    with pytest.raises(PermissionDenied):
        admin.site._registry[Application].delete_queryset(request, Application.objects.order_by("-name"))

    assert Application.objects.count() == 2


def test_audit_log_hides_what_the_user_did_in_an_organization_they_left(client, world):
    user = member(client, world, "admin")
    left = Membership.objects.create(user=user, organization=world["other"], role="admin")
    credential_issue(application=world["other_app"], by=user)
    left.delete()

    response = client.get(reverse("admin:accounts_auditentry_changelist"))

    assert response.status_code == 200
    assert b"other-app" not in response.content
    assert b"Other Org" not in response.content


def test_audit_log_shows_the_users_own_sign_ins(client, world):
    user = member(client, world, "viewer")
    audit_record(action=AuditEntry.Action.SIGN_IN, actor=user, target="signed-in-from-the-test")
    audit_record(action=AuditEntry.Action.SIGN_IN, actor=UserFactory(), target="someone-else-signed-in")

    response = client.get(reverse("admin:accounts_auditentry_changelist"))

    assert b"signed-in-from-the-test" in response.content
    assert b"someone-else-signed-in" not in response.content


def add_member(client, world, user_field):
    return client.post(
        reverse("admin:accounts_membership_add"),
        {"user": user_field, "organization": world["own"].pk, "role": "viewer"},
    )


def superuser(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))


def test_adding_a_member_by_an_e_mail_several_accounts_share_is_refused(client, world):
    superuser(client)
    UserFactory(username="first", email="shared@example.com")
    UserFactory(username="second", email="Shared@example.com")

    response = add_member(client, world, "shared@example.com")

    assert response.status_code == 200
    assert b"Several accounts have that e-mail address; enter the username instead." in response.content
    assert not Membership.objects.filter(user__email__iexact="shared@example.com", organization=world["own"]).exists()


def test_adding_a_member_by_e_mail_finds_the_one_account_with_it(client, world):
    superuser(client)
    UserFactory(username="someone", email="someone@example.com")

    response = add_member(client, world, "SOMEONE@example.com")

    assert response.status_code == 302
    assert Membership.objects.filter(user__username="someone", organization=world["own"]).exists()


@pytest.mark.parametrize("user_field", ["nobody", "nobody@example.com"])
def test_adding_an_unknown_member_answers_alike_for_usernames_and_e_mails(client, world, user_field):
    superuser(client)

    response = add_member(client, world, user_field)

    assert response.status_code == 200
    assert NO_SUCH_MEMBER in response.content
    assert not Membership.objects.filter(organization=world["own"], role="viewer").exists()


NO_SUCH_MEMBER = b"No one in your organizations has that username or e-mail; a superuser adds new people."


@pytest.mark.parametrize("role", ROLES)
def test_only_a_superuser_adds_an_existing_account_others_invite(client, world, role):
    member(client, world, role)
    UserFactory(username="outsider")

    response = add_member(client, world, "outsider")

    assert response.status_code == 403
    assert not Membership.objects.filter(user__username="outsider").exists()


def test_a_superuser_adds_any_account_to_an_organization(client, world):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    UserFactory(username="newcomer")

    response = add_member(client, world, "newcomer")

    assert response.status_code == 302
    assert Membership.objects.filter(user__username="newcomer", organization=world["own"]).exists()


def test_adding_a_member_does_not_make_their_account_staff(client, world):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    newcomer = UserFactory(username="newcomer")

    add_member(client, world, "newcomer")

    newcomer.refresh_from_db()
    assert Membership.objects.filter(user=newcomer, organization=world["own"]).exists()
    assert not newcomer.is_staff


def sign_in(client, user):
    user.set_password("right-password-123")
    user.save()
    return client.post(
        reverse("admin:login"), {"username": user.username, "password": "right-password-123", "next": "/admin/"}
    )


def test_a_member_signs_in_to_the_admin_without_staff_status(client, world):
    user = UserFactory()
    Membership.objects.create(user=user, organization=world["own"], role="viewer")

    response = sign_in(client, user)

    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200
    assert client.get(reverse("admin:accounts_application_changelist")).status_code == 200


def test_an_account_in_no_organization_cannot_enter_the_admin_even_as_staff(client, world):
    user = UserFactory(is_staff=True)  # a member once, since removed

    response = sign_in(client, user)

    assert response.status_code == 200 and b"errornote" in response.content
    assert client.get("/admin/").status_code == 302


def organization_form(organization, memberships, **fields) -> dict:
    data = {
        "name": organization.name,
        "contact_email": organization.contact_email,
        "memberships-TOTAL_FORMS": str(len(memberships)),
        "memberships-INITIAL_FORMS": str(len(memberships)),
        "applications-TOTAL_FORMS": "0",
        "applications-INITIAL_FORMS": "0",
        # The single sign-on rules' rows, shown to superusers only.
        "sign_on_rules-TOTAL_FORMS": "0",
        "sign_on_rules-INITIAL_FORMS": "0",
        **fields,
    }
    for index, membership in enumerate(memberships):
        data.update(
            {
                f"memberships-{index}-id": membership.pk,
                f"memberships-{index}-organization": organization.pk,
                f"memberships-{index}-user": membership.user.username,
                f"memberships-{index}-role": membership.role,
            }
        )
    return data


def test_saving_an_organization_audits_only_the_memberships_that_changed(client, world):
    owner = member(client, world, "owner")
    organization = world["own"]
    unchanged = Membership.objects.get(user=owner)
    promoted = Membership.objects.create(
        user=UserFactory(username="promoted"), organization=organization, role="viewer"
    )
    promoted.role = "admin"

    response = client.post(
        reverse("admin:accounts_organization_change", args=[organization.pk]),
        organization_form(organization, [unchanged, promoted]),
    )

    assert response.status_code == 302
    entry = AuditEntry.objects.get(action="membership_changed")
    assert entry.details == {"user": "promoted", "role": "admin", "previous_role": "viewer"}
    assert Membership.objects.get(pk=promoted.pk).role == "admin"


def test_saving_an_unchanged_organization_writes_no_membership_audit_entry(client, world):
    owner = member(client, world, "owner")
    organization = world["own"]

    response = client.post(
        reverse("admin:accounts_organization_change", args=[organization.pk]),
        organization_form(organization, [Membership.objects.get(user=owner)]),
    )

    assert response.status_code == 302
    assert not AuditEntry.objects.filter(action="membership_changed").exists()


def test_a_membership_row_added_and_left_blank_is_ignored(client, world):
    owner = member(client, world, "owner")
    organization = world["own"]
    data = organization_form(organization, [Membership.objects.get(user=owner)])
    data.update(
        {
            "memberships-TOTAL_FORMS": "2",
            "memberships-1-organization": organization.pk,
            "memberships-1-user": "",
            "memberships-1-role": "viewer",
        }
    )

    response = client.post(reverse("admin:accounts_organization_change", args=[organization.pk]), data)

    assert response.status_code == 302
    assert Membership.objects.filter(organization=organization).count() == 1


@pytest.mark.parametrize("value", ["abc", "1.5"])
def test_audit_log_filtered_by_a_malformed_organization_redirects_like_any_bad_filter(client, world, value):
    member(client, world, "viewer")

    response = client.get(reverse("admin:accounts_auditentry_changelist"), {"organization": value})

    assert response.status_code == 302
    assert response["Location"].endswith("?e=1")


def test_audit_log_filtered_by_organization_shows_only_its_entries(client, world):
    user = member(client, world, "admin")
    Membership.objects.create(user=user, organization=world["other"], role="viewer")

    response = client.get(reverse("admin:accounts_auditentry_changelist"), {"organization": world["own"].pk})

    assert response.status_code == 200
    assert b"own-app" in response.content
    assert b"other-app" not in response.content


def test_superuser_creates_an_organization_with_its_quota_grants(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))

    response = client.post(
        reverse("admin:accounts_organization_add"),
        {
            "name": "Granted Org",
            "tier": Tier.objects.get(slug="self-hosted").pk,
            "contact_email": "",
            "quota_monitor_only": "on",
            "extra_quota": "5000",
            "extra_quota_month": "2026-12",
            "memberships-TOTAL_FORMS": "0",
            "memberships-INITIAL_FORMS": "0",
            "sign_on_rules-TOTAL_FORMS": "0",
            "sign_on_rules-INITIAL_FORMS": "0",
            "applications-TOTAL_FORMS": "0",
            "applications-INITIAL_FORMS": "0",
        },
    )

    assert response.status_code == 302
    organization = Organization.objects.get(name="Granted Org")
    assert (organization.quota_monitor_only, organization.extra_quota, organization.extra_quota_month) == (
        True,
        5000,
        "2026-12",
    )
    entry = AuditEntry.objects.get(action="organization_created", organization_id=organization.pk)
    assert entry.details == {
        "tier": "self-hosted",
        "quota_monitor_only": True,
        "extra_quota": 5000,
        "extra_quota_month": "2026-12",
    }


def test_tier_change_is_audited_by_tier_slug_before_and_after(client, world):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    organization = world["own"]

    response = client.post(
        reverse("admin:accounts_organization_change", args=[organization.pk]),
        organization_form(
            organization, [], tier=Tier.objects.get(slug="pro").pk, extra_quota="0", extra_quota_month=""
        ),
    )

    assert response.status_code == 302
    entry = AuditEntry.objects.get(action="tier_changed", organization_id=organization.pk)
    assert entry.details == {"tier": ["self-hosted", "pro"]}


def application_list(client):
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("admin:accounts_application_changelist"))
    assert response.status_code == 200
    return response, len(queries)


def test_application_list_reads_active_credentials_without_a_query_per_application(client, world):
    member(client, world, "admin")
    _, queries_for_one = application_list(client)
    for _ in range(5):
        credential_issue(application=ApplicationFactory(organization=world["own"]))

    _, queries_for_six = application_list(client)

    assert queries_for_six == queries_for_one


def test_application_list_counts_only_credentials_that_verify_requests_now(client, world):
    member(client, world, "admin")
    application = world["own_app"]
    credential_issue(application=application)
    credential_revoke(credential=credential_issue(application=application).credential)
    credential_rotate(
        application=ApplicationFactory(organization=world["own"], name="rotated-app"), overlap=timedelta(0)
    )

    response, _ = application_list(client)

    column = dict(
        re.findall(
            r'<th class="field-name"><a [^>]*>([^<]+)</a></th>.*?'
            r'<td class="field-active_credentials">(\d+)</td>',
            response.content.decode(),
        )
    )
    assert column == {"own-app": "2", "rotated-app": "1"}


def test_superuser_tier_change_is_audited_with_each_changed_value_before_and_after(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    tier = Tier.objects.get(slug="pro")

    response = client.post(
        reverse("admin:accounts_tier_change", args=[tier.pk]),
        {
            "name": "Pro",
            "slug": "pro",
            "monthly_event_quota": "2000000",
            "requests_per_minute": "100",
            "retention_days": "90",
        },
    )

    assert response.status_code == 302
    entry = AuditEntry.objects.get(action="tier_changed")
    assert (entry.target, entry.details) == ("Pro", {"monthly_event_quota": [1_000_000, 2_000_000]})


def test_an_owner_issues_a_malti_key_with_its_service_name_and_sees_its_settings(client, world):
    member(client, world, "owner")
    application = world["own_app"]

    response = client.post(
        reverse("admin:accounts_application_issue", args=[application.pk]), {"service_name": " orders-api "}
    )

    assert response.status_code == 200
    credential = application.credentials.order_by("-created_at").first()
    assert credential.service_name == "orders-api"
    page = response.content.decode()
    assert "MALTI_SERVICE_NAME=orders-api" in page and "MALTI_API_KEY=tk_" in page
    assert AuditEntry.objects.get(action="credential_issued", target__contains=credential.token_prefix).details == {
        "service_name": "orders-api"
    }
