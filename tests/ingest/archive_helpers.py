"""Events written straight to the table, at chosen times, for the archive and erasure tests."""

import uuid
from datetime import datetime, timedelta

from accounts.models import Application, Tier
from ingest.models import Event
from tests.conftest import USER_ID
from tests.factories import ApplicationFactory, OrganizationFactory


def free_application(**fields) -> Application:
    """An application of an organization on the free tier: 30 days of retention."""
    return ApplicationFactory(organization=OrganizationFactory(tier=Tier.objects.get(slug="free")), **fields)


def events_add(application: Application, when: datetime, count: int, *, user_id: str = USER_ID) -> list[Event]:
    return Event.objects.bulk_create(
        [
            Event(
                organization_id=application.organization_id,
                application=application,
                event_id=uuid.uuid4(),
                schema_version="1.0.0",
                user_id=user_id,
                session_id=None if n % 2 else "",
                event_type="command",
                category="cli" if n % 2 else None,
                data={"n": n, "text": 'a "quoted", multi\nline value'},
                timestamp=when + timedelta(seconds=n),
                received_at=when,
                service_name="my-app",
                service_version="1.2.3",
                sdk_version=None,
            )
            for n in range(count)
        ]
    )


def stored(application: Application) -> list[tuple]:
    """Every column of the application's events, ordered by id, to compare before and after."""
    fields = [f.attname for f in Event._meta.concrete_fields]
    return list(Event.objects.filter(application=application).order_by("id").values_list(*fields))


def export_folder_block(archive_dir, application, prefix: str = "daily"):
    """Puts a file where ``application``'s scheduled export folder must go, so that the storage cannot
    write its files (a real failure, as a full or read-only disk would be); returns it, to unlink."""
    blocker = archive_dir / "exports" / application.organization.public_id / prefix / application.public_id
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("in the way")
    return blocker
