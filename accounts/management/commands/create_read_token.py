import json as jsonlib

from django.core.management.base import BaseCommand, CommandError

from accounts.selectors import organization_find
from accounts.services import read_token_issue


class Command(BaseCommand):
    help = "Issue a read token for an organization's stats API (every application; the admin can limit it)."

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, help="organization public id or name")
        parser.add_argument("--name", default="", help="what the token is for, e.g. grafana")
        parser.add_argument("--json", action="store_true", help="print exactly one JSON object")

    def handle(self, *args, org, name, json: bool, **options):
        organization = organization_find(ref=org)
        if organization is None:
            # Unlike create_app, never create: a typo must not mint a token for a new, empty organization.
            raise CommandError(f"Unknown organization {org!r}")
        issued = read_token_issue(organization=organization, name=name.strip())
        if json:
            self.stdout.write(jsonlib.dumps({"token": issued.token}))
            return
        self.stdout.write(self.style.SUCCESS(f"Issued read token {issued.read_token} for {organization}"))
        self.stdout.write(f"  Token: {issued.token}")
        self.stdout.write("The token is shown only now; store it safely.")
