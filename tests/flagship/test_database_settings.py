"""How the app talks to PostgreSQL: statements it runs repeatedly are prepared once per
connection, unless DATABASE_PREPARED_STATEMENTS turns that off (behind a pooler that shares
connections between transactions)."""

import json
import os
import subprocess
import sys

import pytest
from django.db import connection

from tests.servers import BASE_DIR

POSTGRES_URL = "postgres://app@db.example:5432/flagship?sslmode=require"


def database_options(**env) -> dict:
    """The default database's OPTIONS as the settings compute them from this environment."""
    code = (
        "import json; from django.conf import settings; "
        "print(json.dumps(settings.DATABASES['default'].get('OPTIONS', {})))"
    )
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("DATABASE_")  # the test's own database settings stay out
    }
    environment.update(DJANGO_SETTINGS_MODULE="flagship.settings", **env)
    output = subprocess.run(
        [sys.executable, "-c", code],
        cwd=BASE_DIR,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(output)


def test_postgresql_is_configured_to_bind_on_the_server_and_prepare():
    options = database_options(DATABASE_URL=POSTGRES_URL)
    assert options == {"sslmode": "require", "server_side_binding": True, "prepare_threshold": 5}


def test_prepared_statements_can_be_turned_off_for_a_transaction_pooler():
    options = database_options(DATABASE_URL=POSTGRES_URL, DATABASE_PREPARED_STATEMENTS="false")
    assert options == {"sslmode": "require"}


@pytest.mark.postgres_only
def test_a_statement_run_repeatedly_is_prepared_on_the_connection(acme):
    from approvals.models import StatusTotal

    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")  # the session's connection prepared others before
    for _ in range(6):
        StatusTotal.objects.total(acme.org.pk, "pending")
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [row[0] for row in cursor.fetchall()]
    assert any(
        'SUM("count")' in statement and "approvals_statustotal" in statement
        for statement in prepared
    )
