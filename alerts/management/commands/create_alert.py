import json as jsonlib

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.selectors import organization_find
from alerts.kinds import KINDS
from alerts.models import Channel
from alerts.services import channel_create, rule_create


def _parameter(text: str) -> tuple[str, object]:
    name, separator, value = text.partition("=")
    if not separator or not name:
        raise CommandError(f"--param takes NAME=VALUE, not {text!r}")
    try:
        return name, jsonlib.loads(value)
    except ValueError:
        return name, value  # plain text, such as an endpoint or a function name


class Command(BaseCommand):
    help = "Create an alert rule, with a signed webhook, Slack or e-mail channel to notify."

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, help="organization public id or name")
        parser.add_argument("--app", default="", help="application public id or name; omitted: every application")
        parser.add_argument("--kind", required=True, choices=list(KINDS))
        parser.add_argument("--name", default="", help="the rule's name (default: kind and application)")
        parser.add_argument("--minutes", type=int, help="silence: minutes without events before it fires")
        parser.add_argument(
            "--param",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help="a parameter of the kind (repeatable), e.g. threshold=100 direction=below",
        )
        parser.add_argument("--event-type", default="")
        parser.add_argument("--service-version", default="")
        parser.add_argument("--renotify-minutes", type=int, default=0)
        parser.add_argument("--webhook", default="", help="notify this URL as a signed webhook")
        parser.add_argument("--slack", default="", help="notify this Slack-compatible incoming webhook")
        parser.add_argument("--email", action="append", default=[], help="notify this address (repeatable)")
        parser.add_argument(
            "--json", action="store_true", help='print exactly one JSON object: {"alert_id", "webhook_secret"}'
        )

    def handle(
        self,
        *args,
        org,
        app,
        kind,
        name,
        minutes,
        param,
        event_type,
        service_version,
        renotify_minutes,
        webhook,
        slack,
        email,
        json,
        **options,
    ):
        organization = organization_find(ref=org)
        if organization is None:
            raise CommandError(f"No organization has the id or name {org!r}")
        application = None
        if app:
            application = (
                organization.applications.filter(public_id=app).first()
                or organization.applications.filter(name__iexact=app).order_by("pk").first()
            )
            if application is None:
                raise CommandError(f"{organization} has no application with the id or name {app!r}")
        parameters = dict(_parameter(text) for text in param)
        if minutes is not None:
            parameters["minutes"] = minutes
        label = application.name if application else organization.name
        try:
            with transaction.atomic():
                channels, secret = [], ""
                if webhook:
                    issued = channel_create(
                        organization=organization,
                        name=f"webhook {webhook}"[:200],
                        kind=Channel.Kind.WEBHOOK,
                        url=webhook,
                    )
                    channels.append(issued.channel)
                    secret = issued.webhook_secret
                if slack:
                    channels.append(
                        channel_create(
                            organization=organization, name=f"slack {slack}"[:200], kind=Channel.Kind.SLACK, url=slack
                        ).channel
                    )
                if email:
                    channels.append(
                        channel_create(
                            organization=organization,
                            name=f"e-mail {', '.join(email)}"[:200],
                            kind=Channel.Kind.EMAIL,
                            email_addresses="\n".join(email),
                        ).channel
                    )
                rule = rule_create(
                    organization=organization,
                    application=application,
                    name=name or f"{kind} of {label}",
                    kind=kind,
                    parameters=parameters,
                    event_type=event_type,
                    service_version=service_version,
                    channels=channels,
                    renotify_minutes=renotify_minutes,
                )
        except ValueError as error:
            raise CommandError(str(error)) from None
        if json:
            self.stdout.write(jsonlib.dumps({"alert_id": rule.pk, "webhook_secret": secret}))
            return
        self.stdout.write(self.style.SUCCESS(f"Created alert rule {rule.pk} ({rule.name}) with {rule.parameters}"))
        if secret:
            self.stdout.write(f"  Webhook secret: {secret}\nIt is shown only now; store it safely.")
