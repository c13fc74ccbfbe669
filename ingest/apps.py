from django.apps import AppConfig


class IngestConfig(AppConfig):
    name = "ingest"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.db.backends.signals import connection_created
        from django.db.models.signals import post_delete, post_migrate

        from ingest import receivers
        from ingest.models import Archive
        from ingest.rollups.distinct import sqlite_functions_register
        from telemetry.schedules import schedules_install

        connection_created.connect(sqlite_functions_register, dispatch_uid="ingest.sqlite_functions")
        post_delete.connect(receivers.archive_deleted, sender=Archive, dispatch_uid="ingest.archive_deleted")
        # Once per migrate (this app's signal), when every app's tables exist.
        post_migrate.connect(schedules_install, sender=self, dispatch_uid="telemetry.schedules_install")
