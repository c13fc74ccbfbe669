"""An archive's files go when its row goes (its application or organization deleted)."""

from django.db import transaction


def archive_deleted(sender, instance, **kwargs):
    from ingest.retention.archive import files_delete

    # After the commit: a deletion rolled back must still find its files.
    transaction.on_commit(lambda: files_delete(instance.path))
