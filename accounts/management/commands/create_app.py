import json as jsonlib

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.models import Tier
from accounts.selectors import ingest_url
from accounts.services import DEFAULT_TIER, application_create, organization_get_or_create


class Command(BaseCommand):
    help = "Create an application with fresh credentials (and its organization if it does not exist)."

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, help="organization public id or name; created if unknown")
        parser.add_argument("--name", required=True, help="application name")
        parser.add_argument("--tier", default=DEFAULT_TIER, help=f"tier of a new organization (default {DEFAULT_TIER})")
        parser.add_argument(
            "--malti-service",
            default="",
            help="make the token a Malti key (MALTI_API_KEY) for this service (MALTI_SERVICE_NAME)",
        )
        parser.add_argument("--json", action="store_true", help="print exactly one JSON object")

    def handle(self, *args, org, name, tier, malti_service: str, json: bool, **options):
        if not Tier.objects.filter(slug=tier).exists():
            known = ", ".join(Tier.objects.values_list("slug", flat=True))
            raise CommandError(f"Unknown tier {tier!r}; known tiers: {known}")
        malti_service = malti_service.strip()
        with transaction.atomic():
            organization, _ = organization_get_or_create(ref=org, tier_slug=tier)
            issued = application_create(organization=organization, name=name, service_name=malti_service)
        app_id = issued.credential.application.public_id
        result = {
            "org_id": organization.public_id,
            "app_id": app_id,
            "api_token": issued.api_token,
            "hmac_secret": issued.hmac_secret,
            "ingest_url": ingest_url(organization.public_id, app_id),
        }
        if malti_service:
            result["malti_service"] = malti_service
        if json:
            self.stdout.write(jsonlib.dumps(result))
            return
        self.stdout.write(self.style.SUCCESS(f"Created application {name!r} in {organization}"))
        for label, key in (
            ("Organization id", "org_id"),
            ("App id", "app_id"),
            ("API token", "api_token"),
            ("HMAC secret", "hmac_secret"),
            ("Ingest URL", "ingest_url"),
        ):
            self.stdout.write(f"  {label + ':':<17}{result[key]}")
        if "malti_service" in result:
            self.stdout.write(f"  {'Malti service:':<17}{result['malti_service']} (MALTI_API_KEY is the API token)")
        self.stdout.write("The token and secret are shown only now; store them safely.")
