"""Creates the provider's people and the client the service signs in with: seed.py CLIENT_ID SECRET REDIRECT_URI."""

import sys

import django

django.setup()

from django.contrib.auth.models import Group, User  # noqa: E402
from oauth2_provider.models import Application  # noqa: E402

client_id, secret, redirect_uri = sys.argv[1:4]
admins = Group.objects.create(name="telemetry-admins")
for username, email, last_name in [
    ("alice", "alice@acme.example", ""),
    ("bob", "bob@elsewhere.example", ""),
    ("carol", "carol@acme.example", "unverified"),
]:
    User.objects.create_user(username, email, "provider-password", last_name=last_name)
User.objects.get(username="alice").groups.add(admins)
Application.objects.create(
    name="telemetry",
    client_id=client_id,
    client_secret=secret,
    hash_client_secret=False,
    client_type=Application.CLIENT_CONFIDENTIAL,
    authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
    redirect_uris=redirect_uri,
    algorithm=Application.RS256_ALGORITHM,
    skip_authorization=True,
)
