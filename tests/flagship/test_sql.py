"""The plain-SQL writes and locked reads the transitions use (flagship.sql): each must leave
the database as the ORM's own save, bulk_create and select_for_update would."""

import threading
import time
import uuid

import psycopg
import pytest
from django.db import DatabaseError, OperationalError, connection, transaction
from django.db.transaction import TransactionManagementError

from approvals.models import ApprovalRequest, QueuedEmail, StatusTotal
from flags.models import FlagState
from flagship import sql
from tests.approvals.helpers import production_state, propose


def field_values(instance) -> dict:
    return {field.attname: getattr(instance, field.attname) for field in instance._meta.fields}


@pytest.fixture
def request_(acme, developer) -> ApprovalRequest:
    return propose(acme, developer)


def test_insert_writes_every_row_in_one_statement_as_the_orm_reads_it_back(
    request_, django_assert_num_queries
):
    conflicts = [{"field": "enabled", "base": False, "current": True, "requested": True}]
    emails = [
        QueuedEmail(approval_request=request_, event="approved"),
        QueuedEmail(approval_request=request_, event="schedule_failed", conflicts=conflicts),
    ]

    with django_assert_num_queries(1):
        sql.insert(emails)

    for email in emails:
        assert not email._state.adding
        stored = QueuedEmail.objects.get(pk=email.pk)
        assert field_values(stored) == field_values(email)
    assert QueuedEmail.objects.get(pk=emails[1].pk).conflicts == conflicts
    assert QueuedEmail.objects.get(pk=emails[0].pk).status == "pending"


def test_insert_refuses_a_model_whose_key_the_database_makes(acme, django_assert_num_queries):
    with django_assert_num_queries(0), pytest.raises(TypeError, match="made by the database"):
        sql.insert([StatusTotal(org=acme.org, status="pending", count=1)])


def test_insert_of_nothing_runs_nothing(django_assert_num_queries, db):
    with django_assert_num_queries(0):
        sql.insert([])


def test_update_writes_only_the_named_fields_and_sets_auto_now(acme, django_assert_num_queries):
    state = production_state(acme)
    updated_before = state.updated_at
    state.enabled = True
    state.percentage_rollout = 5000  # changed on the instance, but not named

    with django_assert_num_queries(1):
        sql.update(state, ["enabled", "updated_at"])

    stored = production_state(acme)
    assert stored.enabled is True
    assert stored.percentage_rollout == 0
    assert stored.updated_at == state.updated_at > updated_before


def test_update_of_a_row_that_is_gone_raises_instead_of_passing_silently(acme):
    missing = FlagState(id=uuid.uuid4(), flag=acme.flag, environment=acme.production)
    with pytest.raises(DatabaseError, match="was not updated"):
        sql.update(missing, ["enabled"])


def test_lock_one_reads_the_row_and_its_related_rows_in_one_statement(
    request_, django_assert_num_queries
):
    expected = ApprovalRequest.objects.select_related("flag", "environment").get(pk=request_.pk)

    with transaction.atomic(), django_assert_num_queries(1):
        locked = sql.lock_one(ApprovalRequest, related=("flag", "environment"), id=request_.pk)
        assert locked.flag.key == expected.flag.key
        assert locked.environment.slug == expected.environment.slug

    assert field_values(locked) == field_values(expected)
    assert field_values(locked.flag) == field_values(expected.flag)
    assert field_values(locked.environment) == field_values(expected.environment)
    assert not locked._state.adding


def test_lock_one_matches_foreign_keys_by_id_and_answers_none_when_nothing_matches(acme):
    with transaction.atomic():
        state = sql.lock_one(FlagState, flag=acme.flag.pk, environment=acme.production.pk)
        assert state == production_state(acme)
        assert sql.lock_one(FlagState, flag=acme.flag.pk, environment=uuid.uuid4()) is None


def try_to_lock(model, pk) -> str:
    """Another connection asks for the row without waiting: "busy" while it is locked. Only
    PostgreSQL's "lock not available" counts as busy; any other error fails the test."""
    table = connection.ops.quote_name(model._meta.db_table)
    outcome = []

    def run():
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(f"SELECT id FROM {table} WHERE id = %s FOR UPDATE NOWAIT", [pk])
            outcome.append("locked")
        except OperationalError as error:
            busy = isinstance(error.__cause__, psycopg.errors.LockNotAvailable)
            outcome.append("busy" if busy else error)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=10)
    assert not thread.is_alive() and outcome[0] in ("locked", "busy"), outcome
    return outcome[0]


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_lock_one_holds_the_row_lock_until_the_transaction_ends(acme):
    state = production_state(acme)
    with transaction.atomic():
        sql.lock_one(FlagState, id=state.pk)
        assert try_to_lock(FlagState, state.pk) == "busy"
    assert try_to_lock(FlagState, state.pk) == "locked"


def test_lock_with_partner_reads_both_rows_in_one_statement(
    acme, request_, django_assert_num_queries
):
    expected = ApprovalRequest.objects.select_related("flag").get(pk=request_.pk)
    with transaction.atomic(), django_assert_num_queries(1):
        locked, state = sql.lock_with_partner(
            ApprovalRequest,
            FlagState,
            shared=("flag", "environment"),
            related=("flag",),
            id=request_.pk,
        )
        assert locked.flag.key == expected.flag.key
    assert field_values(locked) == field_values(expected)
    assert field_values(state) == field_values(production_state(acme))

    FlagState.objects.filter(pk=state.pk).delete()
    with transaction.atomic():
        assert (
            sql.lock_with_partner(
                ApprovalRequest, FlagState, shared=("flag", "environment"), id=request_.pk
            )
            is None
        )


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_lock_with_partner_holds_both_row_locks_until_the_transaction_ends(acme, request_):
    state = production_state(acme)
    with transaction.atomic():
        sql.lock_with_partner(
            ApprovalRequest, FlagState, shared=("flag", "environment"), id=request_.pk
        )
        assert try_to_lock(ApprovalRequest, request_.pk) == "busy"
        assert try_to_lock(FlagState, state.pk) == "busy"
    assert try_to_lock(ApprovalRequest, request_.pk) == "locked"
    assert try_to_lock(FlagState, state.pk) == "locked"


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_lock_with_partner_locks_the_row_before_its_partner(acme, request_):
    """The order two statements would take, so a transition waiting for the flag state
    already holds its request, and one waiting for the request holds nothing else."""
    state = production_state(acme)
    state_held, release = threading.Event(), threading.Event()

    returned = {}

    def in_a_transaction(lock):
        def run():
            try:
                with transaction.atomic():
                    returned[lock] = lock()
            except Exception as error:  # reported below; a thread cannot fail the test itself
                returned[lock] = error
            finally:
                connection.close()

        return threading.Thread(target=run)

    def hold_the_state():
        sql.lock_one(FlagState, id=state.pk)
        state_held.set()
        release.wait(timeout=10)

    holder = in_a_transaction(hold_the_state)
    holder.start()
    assert state_held.wait(timeout=10)

    def lock_both():
        return sql.lock_with_partner(
            ApprovalRequest, FlagState, shared=("flag", "environment"), id=request_.pk
        )

    locker = in_a_transaction(lock_both)
    locker.start()
    deadline = time.monotonic() + 10
    while (request_busy := try_to_lock(ApprovalRequest, request_.pk)) != "busy":
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    release.set()
    holder.join(timeout=10)
    locker.join(timeout=10)

    assert not holder.is_alive() and not locker.is_alive()
    assert request_busy == "busy"  # held while the locker waited for the state
    locked, partner = returned[lock_both]  # the locker then got both rows
    assert (locked.pk, partner.pk) == (request_.pk, state.pk)
    assert try_to_lock(ApprovalRequest, request_.pk) == "locked"


def test_select_reads_every_matching_row_and_no_other(acme, other_org, owner, outsider):
    from audit.models import Webhook

    def webhook(org, by, url, is_active=True):
        return Webhook.create_audited(
            by=by, org=org, url=url, events=["*"], secret="s" * 32, is_active=is_active
        )

    wanted = {webhook(acme.org, owner, "https://a.example/1").pk}
    wanted.add(webhook(acme.org, owner, "https://a.example/2").pk)
    webhook(acme.org, owner, "https://a.example/off", is_active=False)
    webhook(other_org.org, outsider, "https://b.example/1")

    rows = sql.select(Webhook, org=acme.org.pk, is_active=True)

    assert {row.pk for row in rows} == wanted
    for row in rows:
        assert field_values(row) == field_values(Webhook.objects.get(pk=row.pk))


@pytest.mark.parametrize(
    "value",
    [
        {"nested": {"list": [1, 2.5, -0.0, None, True, "é\n"]}, "empty": {}},
        [-9223372036854775809, 18446744073709551616, 123456789012345678901234567890],
        [0.1, 5e-324, 1.7976931348623157e308, 1e16, 2.5e-7],
        "a string with \\u escapes: \u00e9 \u2603 \U0001f600",
        None,
    ],
)
def test_json_columns_read_as_the_orm_reads_them(acme, value):
    state = production_state(acme)
    state.default_value = value
    state.save()
    field = FlagState._meta.get_field("default_value")
    table = connection.ops.quote_name(FlagState._meta.db_table)

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT default_value FROM {table} WHERE id = %s", [state.pk.hex])
        (stored,) = cursor.fetchone()
    fast, orm = sql.converter(field)(stored), production_state(acme).default_value

    assert fast == orm
    assert repr(fast) == repr(orm)  # the same types too: no integer read as a float


def statements_for_writes(count: int) -> int:
    """Statements `count` held writes take: one on PostgreSQL, one each on SQLite."""
    return 1 if connection.vendor == "postgresql" else count


class TestWritesTogether:
    def held_writes(self, request_, state) -> QueuedEmail:
        """An insert and an update, as a transition makes them."""
        email = QueuedEmail(approval_request=request_, event="approved")
        sql.insert([email])
        state.enabled = True
        sql.update(state, ["enabled", "updated_at"])
        return email

    def test_run_as_the_block_ends_in_one_statement_on_postgresql(
        self, acme, request_, django_assert_num_queries
    ):
        state = production_state(acme)
        # Contexts exit in reverse: nothing runs inside the block, then the writes run.
        with (
            django_assert_num_queries(statements_for_writes(2)),
            sql.writes_together(),
            django_assert_num_queries(0),
        ):
            email = self.held_writes(request_, state)

        assert QueuedEmail.objects.filter(pk=email.pk).exists()
        assert production_state(acme).enabled is True

    def test_a_block_that_raises_writes_nothing(self, acme, request_, django_assert_num_queries):
        state = production_state(acme)
        with (
            django_assert_num_queries(0),
            pytest.raises(ZeroDivisionError),
            sql.writes_together(),
        ):
            email = self.held_writes(request_, state)
            raise ZeroDivisionError

        assert sql.held_writes() is None
        assert not QueuedEmail.objects.filter(pk=email.pk).exists()
        assert production_state(acme).enabled is False
        with django_assert_num_queries(1):  # and the next write runs at once
            sql.update(state, ["enabled"])

    def test_an_update_of_a_row_that_is_gone_raises_as_the_block_ends(
        self, acme, request_, django_assert_num_queries
    ):
        missing = FlagState(id=uuid.uuid4(), flag=acme.flag, environment=acme.production)
        # Contexts exit in reverse: nothing runs inside the block; the error comes as it ends.
        with (
            pytest.raises(DatabaseError, match=f"FlagState {missing.pk} was not updated"),
            transaction.atomic(),
            sql.writes_together(),
            django_assert_num_queries(0),
        ):
            sql.insert([QueuedEmail(approval_request=request_, event="approved")])
            sql.update(missing, ["enabled"])
        assert not QueuedEmail.objects.filter(event="approved").exists()

    @pytest.mark.postgres_only
    def test_a_statement_of_many_parameters_runs_as_in_production(self, acme, request_):
        """Unlogged (as in production), the statement goes with numbered placeholders; here
        110 parameters and an update whose row count is checked."""
        assert not connection.queries_logged
        state = production_state(acme)
        with transaction.atomic(), sql.writes_together():
            emails = [QueuedEmail(approval_request=request_, event="approved") for _ in range(10)]
            sql.insert(emails)
            state.enabled = True
            sql.update(state, ["enabled", "updated_at"])
        assert QueuedEmail.objects.filter(pk__in=[email.pk for email in emails]).count() == 10
        # Each value in its own column: a misnumbered placeholder would move one.
        assert field_values(QueuedEmail.objects.get(pk=emails[-1].pk)) == field_values(emails[-1])
        assert production_state(acme).enabled is True

        missing = FlagState(id=uuid.uuid4(), flag=acme.flag, environment=acme.production)
        with (
            pytest.raises(DatabaseError, match=f"FlagState {missing.pk} was not updated"),
            transaction.atomic(),
            sql.writes_together(),
        ):
            sql.insert(
                [QueuedEmail(approval_request=request_, event="rejected") for _ in range(10)]
            )
            sql.update(missing, ["enabled"])
        assert not QueuedEmail.objects.filter(event="rejected").exists()

    def test_a_nested_block_that_raises_drops_only_its_own_writes(self, acme, request_):
        state = production_state(acme)
        with sql.writes_together():
            email = self.held_writes(request_, state)
            with pytest.raises(ZeroDivisionError), sql.writes_together():
                sql.insert([QueuedEmail(approval_request=request_, event="rejected")])
                raise ZeroDivisionError
            held = len(sql.held_writes().writes)
        assert held == 2
        assert QueuedEmail.objects.filter(pk=email.pk).exists()
        assert not QueuedEmail.objects.filter(event="rejected").exists()

    @pytest.mark.django_db(transaction=True)
    def test_outside_a_transaction_it_refuses_to_start(self):
        with pytest.raises(TransactionManagementError), sql.writes_together():
            pass

    def test_a_nested_block_joins_the_outer_one(self, acme, request_, django_assert_num_queries):
        state = production_state(acme)
        with sql.writes_together():
            with django_assert_num_queries(0), sql.writes_together():
                email = self.held_writes(request_, state)
            held = len(sql.held_writes().writes)
        assert held == 2
        assert QueuedEmail.objects.filter(pk=email.pk).exists()


def test_two_audit_records_in_one_block_extend_the_chain_one_after_the_other(acme, owner):
    from audit.management.commands.verify_audit import first_broken_link
    from audit.models import AuditEntry, record

    before = AuditEntry.objects.filter(org=acme.org).count()
    with transaction.atomic(), sql.writes_together():
        for action in ("first.note", "second.note"):
            record(org_id=acme.org.pk, actor=owner, action=action, resource=acme.org)

    newest = list(AuditEntry.objects.chain_of(acme.org.pk))[-2:]
    assert [entry.action for entry in newest] == ["first.note", "second.note"]
    assert newest[1].sequence == newest[0].sequence + 1 == before + 2
    assert first_broken_link(acme.org) is None


def test_the_status_totals_move_once_per_block(acme):
    with (
        pytest.raises(RuntimeError, match="once per writes_together block"),
        transaction.atomic(),
        sql.writes_together(),
    ):
        StatusTotal.objects.shift(acme.org.pk, {"pending": 1})
        StatusTotal.objects.shift(acme.org.pk, {"pending": 1})
