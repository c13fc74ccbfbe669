"""What the operators' commands share: organizations and applications by public id, and dates."""

from datetime import UTC, datetime

from django.core.management import CommandError

from accounts.models import Application, Organization


def organization_get(public_id: str) -> Organization:
    try:
        return Organization.objects.select_related("tier").get(public_id=public_id)
    except Organization.DoesNotExist:
        raise CommandError(f"No organization {public_id!r}") from None


def application_get(organization: Organization, public_id: str | None) -> Application | None:
    """``organization``'s application ``public_id``; an application of another organization is unknown here."""
    if public_id is None:
        return None
    try:
        return organization.applications.select_related("organization").get(public_id=public_id)
    except Application.DoesNotExist:
        raise CommandError(f"No application {public_id!r} in organization {organization.public_id}") from None


def moment(text: str) -> datetime:
    """An ISO date or date-time; without a zone, UTC."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(f"{text!r} is not a date (YYYY-MM-DD) or ISO date-time") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def add_range_arguments(parser, *, app_required: bool = False) -> None:
    parser.add_argument("--org", required=True, help="The organization's public id.")
    parser.add_argument("--app", required=app_required, help="An application's public id (of that organization).")
    parser.add_argument("--since", required=True, type=moment, help="From this date or time (UTC), included.")
    parser.add_argument("--until", required=True, type=moment, help="Up to this date or time (UTC), excluded.")
