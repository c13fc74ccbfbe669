"""check_backup proves that the newest backup file restores into a scratch database."""

import os
import subprocess

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from tests.factories import OrganizationFactory

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def scratch_name() -> str:
    # Named after the database the suite was pointed at, so suites sharing a server never share it.
    return f"{connection.settings_dict['NAME'].removeprefix('test_')}_restore_check"


def pg_dump(target, *options) -> None:
    database = connection.settings_dict
    env = {**os.environ, "PGPASSWORD": database["PASSWORD"] or ""}
    subprocess.run(
        [
            "pg_dump",
            *options,
            "--host",
            database["HOST"] or "localhost",
            "--port",
            str(database["PORT"] or 5432),
            "--username",
            database["USER"] or "postgres",
            "--file",
            str(target),
            database["NAME"],
        ],
        env=env,
        check=True,
    )


def test_the_newest_dump_restores_and_its_contents_are_reported(tmp_path, capsys):
    OrganizationFactory(name="Backed up")
    (tmp_path / "old.sql").write_text("this is not SQL at all;")
    os.utime(tmp_path / "old.sql", (0, 0))
    pg_dump(tmp_path / "nightly.dump", "--format=custom")

    call_command("check_backup", "--dir", str(tmp_path), "--scratch-db", scratch_name())

    out = capsys.readouterr().out
    assert "nightly.dump restores." in out and "organizations: 1" in out
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_database WHERE datname = %s", [scratch_name()])
        assert cursor.fetchone()[0] == 0


def test_a_plain_gzipped_dump_restores_too(tmp_path, capsys):
    pg_dump(tmp_path / "nightly.sql")
    subprocess.run(["gzip", str(tmp_path / "nightly.sql")], check=True)

    call_command("check_backup", "--file", str(tmp_path / "nightly.sql.gz"), "--scratch-db", scratch_name())

    assert "nightly.sql.gz restores." in capsys.readouterr().out


def test_a_broken_backup_fails_the_check(tmp_path):
    pg_dump(tmp_path / "nightly.dump", "--format=custom")
    broken = tmp_path / "broken.dump"
    broken.write_bytes((tmp_path / "nightly.dump").read_bytes()[:2000])

    with pytest.raises(CommandError, match="does not restore"):
        call_command("check_backup", "--file", str(broken), "--scratch-db", scratch_name())


def test_no_backup_at_all_fails_the_check(tmp_path):
    with pytest.raises(CommandError, match="No backup file"):
        call_command("check_backup", "--dir", str(tmp_path), "--scratch-db", scratch_name())
