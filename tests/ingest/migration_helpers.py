"""Moving the test database between migrations, for tests of data migrations."""

from django.db import connection
from django.db.migrations.executor import MigrationExecutor


def migrate(ingest_migration: str | None = None):
    """Migrates ingest to ``ingest_migration`` (every other app to its latest); returns the models then."""
    executor = MigrationExecutor(connection)
    targets = [node for node in executor.loader.graph.leaf_nodes() if node[0] != "ingest" or not ingest_migration]
    if ingest_migration:
        targets.append(("ingest", ingest_migration))
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps
