"""The models and the migrations describe the same schema: a model change ships with its migration."""

from io import StringIO

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_every_model_change_has_its_migration():
    out = StringIO()
    try:
        call_command("makemigrations", "--check", "--dry-run", stdout=out)
    except SystemExit as error:
        raise AssertionError(f"models differ from the migrations:\n{out.getvalue()}") from error
