import json
import os
import secrets

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.models import Application, Membership, User
from accounts.selectors import ingest_url
from accounts.services import application_create, organization_get_or_create
from accounts.snippets import curl_snippet

DEMO_ORG = "Demo organization"
DEMO_APP = "Demo application"
DEMO_USER = "admin"


class Command(BaseCommand):
    help = "Create, once, a demo organization, application and superuser; print their credentials and URLs."

    def handle(self, *args, **options):
        path = settings.DATA_DIR / "demo-credentials.json"
        demo = json.loads(path.read_text()) if path.exists() else None
        if demo is None or not Application.objects.filter(public_id=demo.get("app_id")).exists():
            demo = self._create()
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                json.dump(demo, handle, indent=2)
        self._print(demo, path)

    @transaction.atomic
    def _create(self) -> dict:
        password = secrets.token_urlsafe(12)
        user = User.objects.filter(username=DEMO_USER).first()
        if user is None:
            user = User.objects.create_superuser(DEMO_USER, "admin@example.com", password)
        else:
            user.set_password(password)
            user.save(update_fields=["password"])
        organization, _ = organization_get_or_create(ref=DEMO_ORG)
        Membership.objects.get_or_create(user=user, organization=organization, defaults={"role": Membership.Role.OWNER})
        issued = application_create(organization=organization, name=DEMO_APP, by=user)
        app_id = issued.credential.application.public_id
        return {
            "username": DEMO_USER,
            "password": password,
            "org_id": organization.public_id,
            "app_id": app_id,
            "api_token": issued.api_token,
            "hmac_secret": issued.hmac_secret,
            "ingest_url": ingest_url(organization.public_id, app_id),
        }

    def _print(self, demo: dict, path) -> None:
        base = settings.PUBLIC_URL.rstrip("/")
        out = self.stdout.write
        out(self.style.SUCCESS("\nTelemetry is starting. Demo account and application:"))
        out(f"  Admin:           {base}/admin/   user {demo['username']}  password {demo['password']}")
        out(f"  Health:          {base}/health   readiness {base}/ready")
        out(f"  Organization id: {demo['org_id']}")
        out(f"  App id:          {demo['app_id']}")
        out(f"  API token:       {demo['api_token']}")
        out(f"  HMAC secret:     {demo['hmac_secret']}")
        out(f"  Ingest URL:      {demo['ingest_url']}")
        stream_path = f"/v1/streams/{demo['org_id']}/{demo['app_id']}"
        out(
            f"  Event streams:   {base}{stream_path}"
            + (
                f"   WebSocket {settings.PUBLIC_WEBSOCKET_URL.rstrip('/')}{stream_path}"
                if settings.SERVER_WEBSOCKET_PORT
                else ""
            )
        )
        out(f"  (kept in {path}, readable only by you)\n")
        out("Send a signed batch (paste into a shell):\n")
        out(curl_snippet(ingest_url=demo["ingest_url"], api_token=demo["api_token"], hmac_secret=demo["hmac_secret"]))
