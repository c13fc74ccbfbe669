"""Read tokens in the admin: issued with the token shown once, revoked, scoped to the user's organizations;
and the revoking that read tokens and credentials share."""

import pytest
from django.urls import reverse

from accounts.models import AuditEntry, Membership, ReadToken
from accounts.selectors import read_token_find
from accounts.services import credential_issue, read_token_issue
from tests.factories import ApplicationFactory, OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db

ADD = reverse("admin:accounts_readtoken_add")


def member(client, organization, role):
    user = UserFactory(is_staff=True)
    Membership.objects.create(user=user, organization=organization, role=role)
    client.force_login(user)
    return user


def test_an_owner_issues_a_token_limited_to_an_application_and_sees_it_once(client):
    organization = OrganizationFactory()
    application = ApplicationFactory(organization=organization)
    user = member(client, organization, "owner")

    response = client.post(ADD, {"organization": organization.pk, "name": "grafana", "applications": [application.pk]})

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    token = response.context["token"]
    assert token.startswith("rt_") and token in response.content.decode()
    stored = read_token_find(token=token)
    assert stored.name == "grafana" and list(stored.applications.all()) == [application]
    assert stored.created_by == user
    assert (
        AuditEntry.objects.filter(action="read_token_issued", actor=user, organization_id=organization.pk).count() == 1
    )
    assert token not in client.get(reverse("admin:accounts_readtoken_change", args=[stored.pk])).content.decode()


def test_a_token_cannot_be_limited_to_an_application_of_another_organization(client):
    organization = OrganizationFactory()
    user = member(client, organization, "owner")
    mine_elsewhere = ApplicationFactory()
    Membership.objects.create(user=user, organization=mine_elsewhere.organization, role="owner")

    response = client.post(ADD, {"organization": organization.pk, "applications": [mine_elsewhere.pk]})

    assert response.status_code == 200
    assert "own organization only" in response.content.decode()
    assert not ReadToken.objects.exists()


def test_a_viewer_may_not_issue_a_read_token(client):
    organization = OrganizationFactory()
    member(client, organization, "viewer")

    response = client.post(ADD, {"organization": organization.pk})

    assert response.status_code == 403
    assert not ReadToken.objects.exists()


def test_an_admin_revokes_a_read_token_and_it_is_audited(client):
    organization = OrganizationFactory()
    issued = read_token_issue(organization=organization)
    user = member(client, organization, "admin")

    response = client.post(reverse("admin:accounts_readtoken_revoke", args=[issued.read_token.pk]))

    assert response.status_code == 302
    assert ReadToken.objects.get(pk=issued.read_token.pk).revoked_at is not None
    assert read_token_find(token=issued.token) is None
    assert AuditEntry.objects.filter(action="read_token_revoked", actor=user).count() == 1


def test_read_tokens_of_another_organization_are_not_listed_and_answer_404(client):
    mine, theirs = OrganizationFactory(), OrganizationFactory()
    read_token_issue(organization=mine, name="mine")
    other = read_token_issue(organization=theirs, name="theirs").read_token
    member(client, mine, "owner")

    listing = client.get(reverse("admin:accounts_readtoken_changelist")).content.decode()

    assert "mine" in listing and "theirs" not in listing
    assert client.get(reverse("admin:accounts_readtoken_change", args=[other.pk])).status_code == 404
    assert client.post(reverse("admin:accounts_readtoken_revoke", args=[other.pk])).status_code == 404
    assert ReadToken.objects.get(pk=other.pk).revoked_at is None


@pytest.mark.parametrize("model", ["readtoken", "credential"])
def test_the_bulk_action_revokes_the_selected_and_says_how_many(client, model):
    organization = OrganizationFactory()
    if model == "readtoken":
        secrets = [read_token_issue(organization=organization).read_token for _ in range(2)]
    else:
        application = ApplicationFactory(organization=organization)
        secrets = [credential_issue(application=application).credential for _ in range(2)]
    member(client, organization, "owner")
    changelist = reverse(f"admin:accounts_{model}_changelist")

    assert "Revoke selected" in client.get(changelist).content.decode()
    response = client.post(
        changelist, {"action": "revoke_selected", "_selected_action": [s.pk for s in secrets]}, follow=True
    )

    assert all(type(s).objects.get(pk=s.pk).revoked_at is not None for s in secrets)
    name = "read tokens" if model == "readtoken" else "credentials"
    assert f"2 {name} revoked." in [str(m) for m in response.context["messages"]]
