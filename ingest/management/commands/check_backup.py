"""Proves the newest backup restores: into a scratch database, checked, then dropped."""

import gzip
import os
import shutil
import subprocess
from pathlib import Path

import psycopg
from django.conf import settings
from django.core.management import BaseCommand, CommandError
from django.db import connection
from psycopg import sql

PATTERNS = ("*.dump", "*.sql", "*.sql.gz")
CHECKS = [
    ("migrations applied", "SELECT count(*) FROM django_migrations"),
    ("organizations", "SELECT count(*) FROM accounts_organization"),
    ("applications", "SELECT count(*) FROM accounts_application"),
    ("events", "SELECT count(*) FROM ingest_event"),
    ("archives", "SELECT count(*) FROM ingest_archive"),
    ("newest event", 'SELECT max("timestamp") FROM ingest_event'),
]


class Command(BaseCommand):
    help = (
        "Restores the newest backup file (pg_dump -Fc *.dump, or plain *.sql / *.sql.gz) of APP_BACKUP__DIR "
        "into a scratch database on the same server, checks that the tables are there and readable, and drops "
        "the scratch database. Fails loudly, for cron or a monitoring check."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dir", type=Path, default=None, help="Where the backups are (APP_BACKUP__DIR).")
        parser.add_argument("--file", type=Path, help="Check this file instead of the newest.")
        parser.add_argument(
            "--scratch-db",
            help="Name of the scratch database (dropped first if it exists); default: <database>_restore_check.",
        )
        parser.add_argument("--keep", action="store_true", help="Keep the scratch database for a look.")

    def handle(self, *args, dir, file, scratch_db, keep, **options):
        if connection.vendor != "postgresql":
            raise CommandError("check_backup checks PostgreSQL backups; back up the SQLite file by copying it.")
        backup = file or self._newest(dir or settings.BACKUP_DIR)
        database = connection.settings_dict
        scratch = scratch_db or f"{database['NAME']}_restore_check"
        if scratch == database["NAME"]:
            raise CommandError("The scratch database must not be the live one.")
        self.stdout.write(f"Restoring {backup} ({backup.stat().st_size:,} bytes) into {scratch}…")
        self._admin(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(scratch)))
        self._admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(scratch)))
        try:
            self._restore(backup, scratch)
            self._check(scratch)
        finally:
            if not keep:
                self._admin(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(scratch)))
        self.stdout.write(self.style.SUCCESS(f"{backup.name} restores."))

    def _newest(self, directory: Path) -> Path:
        found = [path for pattern in PATTERNS for path in directory.glob(pattern) if path.is_file()]
        if not found:
            raise CommandError(f"No backup file ({', '.join(PATTERNS)}) in {directory}")
        return max(found, key=lambda path: path.stat().st_mtime)

    def _conninfo(self, dbname: str) -> dict:
        database = connection.settings_dict
        return {
            key: value
            for key, value in {
                "dbname": dbname,
                "host": database["HOST"],
                "port": database["PORT"],
                "user": database["USER"],
                "password": database["PASSWORD"],
            }.items()
            if value
        }

    def _admin(self, statement) -> None:
        # CREATE and DROP DATABASE cannot run in a transaction; "postgres" is the maintenance database.
        with psycopg.connect(**self._conninfo("postgres"), autocommit=True) as admin:
            admin.execute(statement)

    def _restore(self, backup: Path, scratch: str) -> None:
        info = self._conninfo(scratch)
        env = {
            **os.environ,
            "PGHOST": str(info.get("host", "")),
            "PGPORT": str(info.get("port", "")),
            "PGUSER": str(info.get("user", "")),
            "PGPASSWORD": str(info.get("password", "")),
        }
        env = {key: value for key, value in env.items() if value}
        if backup.name.endswith(".dump"):
            command = [
                "pg_restore",
                "--no-owner",
                "--no-privileges",
                "--exit-on-error",
                "--dbname",
                scratch,
                str(backup),
            ]
            stdin = None
        else:
            command = ["psql", "--quiet", "--no-psqlrc", "-v", "ON_ERROR_STOP=1", "--dbname", scratch]
            stdin = gzip.open(backup, "rb") if backup.name.endswith(".gz") else backup.open("rb")
        if shutil.which(command[0]) is None:
            raise CommandError(f"{command[0]} is not installed (the PostgreSQL client tools)")
        try:
            process = subprocess.Popen(
                command,
                env=env,
                stdin=subprocess.PIPE if stdin else None,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            if stdin:
                with stdin:
                    shutil.copyfileobj(stdin, process.stdin)
                process.stdin.close()
            errors = process.stderr.read().decode(errors="replace")
            process.wait()
        except (OSError, EOFError, gzip.BadGzipFile) as error:
            raise CommandError(f"{backup.name} could not be read: {error}") from None
        if process.returncode:
            raise CommandError(f"{backup.name} does not restore: {errors.strip()[:2000]}")

    def _check(self, scratch: str) -> None:
        try:
            with psycopg.connect(**self._conninfo(scratch)) as restored:
                for label, query in CHECKS:
                    self.stdout.write(f"  {label}: {restored.execute(query).fetchone()[0]}")
        except psycopg.Error as error:
            raise CommandError(f"The restored database is not complete: {error}") from None
