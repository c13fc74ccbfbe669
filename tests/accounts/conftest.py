import pytest

from accounts.models import Membership
from telemetry.lib.redis import get_redis
from tests.factories import OrganizationFactory, UserFactory

PASSWORD = "right-password-123"


def member_create(*, organization=None, role: str = "viewer"):
    """A person who signs in with PASSWORD, a member of ``organization`` (a new one by default)."""
    user = UserFactory()
    user.set_password(PASSWORD)
    user.save()
    Membership.objects.create(user=user, organization=organization or OrganizationFactory(), role=role)
    return user


@pytest.fixture
def member():
    return member_create()


@pytest.fixture(autouse=True)
def _fresh_sign_in_rate_limits():
    # allauth counts failed sign-ins and codes in the cache (Redis, like production), keyed by address
    # and account: every test signs in from 127.0.0.1 with ids a new test database hands out again.
    client = get_redis()
    if client is not None:
        for key in client.scan_iter("cache:*"):
            client.delete(key)
    yield


CALLBACK = "http://testserver/accounts/oidc/sso/login/callback/"


@pytest.fixture(scope="session")
def oidc_provider(tmp_path_factory):
    """A real OpenID Connect provider (tests/accounts/oidc_provider: django-oauth-toolkit) in a process
    of its own on localhost, with people alice (acme.example, group telemetry-admins), bob
    (elsewhere.example) and carol (acme.example, address not verified), each with the password
    "provider-password"; yields its issuer URL, client id and secret."""
    import os
    import subprocess
    import sys
    import urllib.request

    from tests.server import ROOT, unused_port, wait_for_port

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.accounts.oidc_provider.settings",
        "OIDC_PROVIDER_DB": str(tmp_path_factory.mktemp("oidc") / "provider.sqlite3"),
        "PYTHONPATH": str(ROOT),
    }
    env.pop("DATABASE_URL", None)
    client_id, secret = "telemetry-client", "telemetry-client-secret"
    subprocess.run([sys.executable, "-m", "django", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True, timeout=120)
    subprocess.run(
        [sys.executable, "tests/accounts/oidc_provider/seed.py", client_id, secret, CALLBACK],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=60,
    )
    port = unused_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "django", "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        issuer = f"http://127.0.0.1:{port}/o"
        with urllib.request.urlopen(issuer + "/.well-known/openid-configuration", timeout=10) as answer:
            assert answer.status == 200
        yield {"issuer": issuer, "client_id": client_id, "secret": secret}
    finally:
        process.terminate()
        process.wait(timeout=10)
