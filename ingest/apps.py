from django.apps import AppConfig


class IngestConfig(AppConfig):
    name = "ingest"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.db.models.signals import post_delete

        from ingest import receivers
        from ingest.models import Archive

        post_delete.connect(receivers.archive_deleted, sender=Archive, dispatch_uid="ingest.archive_deleted")
