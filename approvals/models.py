import os
import threading
import uuid
from dataclasses import dataclass
from functools import cache
from types import SimpleNamespace

from django.conf import settings
from django.core.exceptions import EmptyResultSet, FullResultSet
from django.db import DEFAULT_DB_ALIAS, connection, models, transaction
from django.utils import timezone

from approvals import notify
from audit.models import AuditEntry, audit_entry, record_all
from flags.models import STATE_FIELDS, Flag, FlagState
from flags.validation import validate_state_changes
from flagship import outbox, permissions, sql
from flagship.errors import InvalidInput, NotFound, NotPermitted, StateConflict
from flagship.models import OrgScopedQuerySet
from flagship.pagination import NEWEST_FIRST, cursor_condition

NOT_PENDING = "approval request is no longer pending"
NOT_OPEN = "approval request is no longer open"
OWN_REQUEST = "cannot review your own request"


class Status(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    APPLIED = "applied", "Applied"
    CANCELLED = "cancelled", "Cancelled"


# Every legal move of an approval request. Terminal statuses have no entry.
ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    Status.PENDING: frozenset({Status.APPROVED, Status.APPLIED, Status.REJECTED, Status.CANCELLED}),
    # An approved request waits for its execution date; a conflict at that time reopens it.
    Status.APPROVED: frozenset({Status.APPLIED, Status.CANCELLED, Status.PENDING}),
}
OPEN_STATUSES = frozenset(ALLOWED_TRANSITIONS)


class ChangeType(models.TextChoices):
    ENABLE = "enable", "Enable"
    DISABLE = "disable", "Disable"
    UPDATE_STATE = "update_state", "Update state"
    ENABLE_WITH_ROLLOUT = "enable_with_rollout", "Enable with rollout"


class ReviewAction(models.TextChoices):
    APPROVE = "approve", "Approve"
    REJECT = "reject", "Reject"


def payload_for_change_type(change_type: str, payload) -> dict:
    """Fills in the implied payload of enable/disable and checks the payload agrees with the
    change type. Value types are checked against the flag separately."""
    if change_type not in ChangeType.values:
        allowed = ", ".join(ChangeType.values)
        raise InvalidInput(
            f"change_type must be one of: {allowed}",
            fields={"change_type": [f"Must be one of: {allowed}."]},
        )
    if payload is None:
        if change_type == ChangeType.ENABLE:
            return {"enabled": True}
        if change_type == ChangeType.DISABLE:
            return {"enabled": False}
        raise InvalidInput(
            f"payload is required for change_type {change_type}",
            fields={"payload": ["This field is required for this change_type."]},
        )
    if not isinstance(payload, dict):
        raise InvalidInput(
            "payload must be a JSON object", fields={"payload": ["Must be a JSON object."]}
        )
    if not payload:
        raise InvalidInput(
            "payload must change at least one field",
            fields={"payload": ["Must change at least one field."]},
        )
    implied_enabled = {
        ChangeType.ENABLE: True,
        ChangeType.ENABLE_WITH_ROLLOUT: True,
        ChangeType.DISABLE: False,
    }.get(change_type)
    if implied_enabled is not None:
        if payload.get("enabled", implied_enabled) is not implied_enabled:
            raise InvalidInput(
                f"payload.enabled must be {str(implied_enabled).lower()} "
                f"for change_type {change_type}",
                fields={"payload.enabled": [f"Must be {str(implied_enabled).lower()}."]},
            )
        payload = {"enabled": implied_enabled, **payload}
    if change_type == ChangeType.ENABLE_WITH_ROLLOUT and "percentage_rollout" not in payload:
        raise InvalidInput(
            "payload.percentage_rollout is required for enable_with_rollout",
            fields={"payload.percentage_rollout": ["This field is required."]},
        )
    return payload


class StatusTotalQuerySet(models.QuerySet):
    def shift(self, org_id, deltas: dict[str, int]) -> None:
        """Adds each delta to the org's total of that status, in the caller's transaction.

        One upsert. Rows are written in status order, so two transactions touching the same
        rows lock them in the same order and cannot deadlock. Once per `sql.writes_together`
        block and org: PostgreSQL refuses two upserts of one row in one statement."""
        deltas = {status: delta for status, delta in sorted(deltas.items()) if delta}
        if not deltas:
            return
        held = sql.held_writes()
        if held is not None:
            if ("status totals", org_id) in held.memo:
                raise RuntimeError("shift the status totals once per writes_together block")
            held.memo["status totals", org_id] = deltas
        table = connection.ops.quote_name(self.model._meta.db_table)
        org = self.model._meta.get_field("org").get_db_prep_value(org_id, connection)
        stripe = status_total_stripe()
        rows = ", ".join(["(%s, %s, %s, %s)"] * len(deltas))
        params = [
            value for status, delta in deltas.items() for value in (org, status, stripe, delta)
        ]
        sql.write(
            f'INSERT INTO {table} (org_id, status, stripe, "count") VALUES {rows} '
            f'ON CONFLICT (org_id, status, stripe) DO UPDATE SET "count" = {table}."count" + '
            'excluded."count"',
            params,
        )

    def total(self, org_id, status: str | None = None) -> int:
        """The org's number of requests (in `status`). Plain SQL: it runs on every list page,
        and building it through the ORM cost twice what running it does."""
        table = connection.ops.quote_name(self.model._meta.db_table)
        sql = f'SELECT COALESCE(SUM("count"), 0) FROM {table} WHERE org_id = %s'
        params = [self.model._meta.get_field("org").get_db_prep_value(org_id, connection)]
        if status:
            sql += " AND status = %s"
            params.append(status)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return int(cursor.fetchone()[0])

    def recount(self, org_id) -> None:
        """Rebuilds the org's totals from its requests (after a bulk load or a repair)."""
        with transaction.atomic():
            self.filter(org_id=org_id).delete()
            self.bulk_create(
                StatusTotal(org_id=org_id, status=row["status"], count=row["count"])
                for row in ApprovalRequest.objects.filter(org_id=org_id)
                .order_by()
                .values("status")
                .annotate(count=models.Count("pk"))
            )


# Each (org, status) total is split over this many rows, summed on read. A process or thread
# always writes the same stripe, so transitions running side by side in different workers
# update different rows instead of queueing on one counter row until each commits.
STATUS_TOTAL_STRIPES = 64


def status_total_stripe() -> int:
    return hash((os.getpid(), threading.get_ident())) % STATUS_TOTAL_STRIPES


class StatusTotal(models.Model):
    """How many approval requests of an organization are in each status.

    Lists answer `total` from here instead of counting up to a million rows. Kept exact by
    `ApprovalRequest._count_move` in the transaction of every creation and transition, and by
    `approvals.apps` when rows are deleted (cascades from a flag, environment or project).
    """

    org = models.ForeignKey("flagship.Organization", on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=16, choices=Status.choices)
    stripe = models.PositiveSmallIntegerField(default=0)
    count = models.BigIntegerField(default=0)

    objects = StatusTotalQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["org", "status", "stripe"], name="status_total_unique"),
        ]

    def __str__(self):
        return f"{self.status}: {self.count}"


def conflicts_between(payload: dict, base_state: dict, current: dict) -> list[dict]:
    """Fields of the payload whose current value moved away from the base state."""
    conflicts = []
    for field, requested in payload.items():
        base = base_state.get(field)
        if current[field] != base:
            conflicts.append(
                {"field": field, "base": base, "current": current[field], "requested": requested}
            )
    return conflicts


class ApprovalRow(SimpleNamespace):
    """An approval request as the API shows it: its columns, `flag_key`, `reviews` (list) and
    `conflicts`. `ApprovalRows` reads them without model instances (ids and timestamps as
    the API's text); `after_change` takes them from a request just changed (ids as UUIDs,
    datetimes, Review instances)."""

    @property
    def pk(self):
        return self.id

    @classmethod
    def after_change(cls, request: "ApprovalRequest") -> "ApprovalRow":
        """The row `api_row` would read right after the change that left `request` so, built
        from what that change read and wrote (its columns, flag, `reviews_after_change` and
        `conflicts_after_change`) instead of read again. Closed requests show no conflicts."""
        if request.reviews_after_change is None:
            raise ValueError("after_change takes a request just created, reviewed or cancelled")
        row = cls(**{name: getattr(request, name) for name in LIST_COLUMNS})
        row.flag_key = request.flag.key
        row.reviews = request.reviews_after_change
        row.conflicts = request.conflicts_after_change if request.is_open else []
        return row


LIST_COLUMNS = (
    "id", "org_id", "project_id", "requestor_id", "flag_id", "environment_id", "change_type",
    "payload", "description", "status", "required_approvals", "approvals_count", "reviewer_id",
    "review_note", "reviewed_at", "applied_at", "execution_date", "base_state", "base_version",
    "created_at", "updated_at",
)  # fmt: skip
REVIEW_COLUMNS = ("reviewer_id", "action", "note", "is_current", "created_at")


@dataclass(frozen=True)
class ApprovalRowsStatement:
    """The SQL of ApprovalRows around a WHERE clause and a LIMIT clause, and what
    its result rows hold: LIST_COLUMNS, the flag key, the flag state's id and STATE_FIELDS, then
    from `review_start` on REVIEW_COLUMNS and the review's id. `conversions` name the columns
    whose values need converting in Python (as the ORM would) and how."""

    template: str
    conversions: list  # (request column, converter)
    state_columns: dict  # flag-state field -> (index, converter or None)
    review_start: int
    review_conversions: list  # (review column, converter)

    @classmethod
    @cache
    def build(cls, vendor: str) -> "ApprovalRowsStatement":
        """Built once per process; `vendor` keys the cache (the SQL is the backend's)."""
        qn = connection.ops.quote_name
        selected, conversions = [], []
        for name in LIST_COLUMNS:
            field = ApprovalRequest._meta.get_field(name)
            column, convert = sql.read(field, f'"page".{qn(field.column)}')
            selected.append(column)
            if convert is not None:
                conversions.append((name, convert))
        selected += ['"flag"."key"', '"state"."id"']
        state_columns = {}
        for name in STATE_FIELDS:
            field = FlagState._meta.get_field(name)
            state_columns[name] = (len(selected), sql.converter(field))
            selected.append(f'"state".{qn(field.column)}')
        review_start = len(selected)
        review_conversions = []
        for name in REVIEW_COLUMNS:
            field = Review._meta.get_field(name)
            column, convert = sql.read(field, f'"review".{qn(field.column)}')
            selected.append(column)
            if convert is not None:
                review_conversions.append((name, convert))
        selected.append('"review"."id"')
        request_table = qn(ApprovalRequest._meta.db_table)
        page_columns = ", ".join(
            f"{request_table}.{qn(ApprovalRequest._meta.get_field(name).column)}"
            for name in LIST_COLUMNS
        )
        # The page is chosen first (the index on the conditions and created_at, id serves it),
        # then each of its rows is joined to its flag, current flag state and reviews.
        template = (
            f'WITH "page" AS (SELECT {page_columns} FROM {request_table} {{where}} '
            f'ORDER BY {request_table}."created_at" DESC, {request_table}."id" DESC {{limit}}) '
            f'SELECT {", ".join(selected)} FROM "page" '
            f'INNER JOIN {sql.table(Flag, "flag")} ON "flag"."id" = "page"."flag_id" '
            f'LEFT OUTER JOIN {sql.table(FlagState, "state")} ON "state"."flag_id" = '
            '"page"."flag_id" AND "state"."environment_id" = "page"."environment_id" '
            f"LEFT OUTER JOIN {sql.table(Review, 'review')} "
            'ON "review"."approval_request_id" = "page"."id" '
            'ORDER BY "page"."created_at" DESC, "page"."id" DESC, '
            '"review"."created_at" ASC, "review"."id" ASC'
        )
        return cls(template, conversions, state_columns, review_start, review_conversions)


def approval_id_or_404(value) -> uuid.UUID:
    """An approval request's id from a URL; NotFound when it cannot be one."""
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise NotFound("approval request not found") from None


@cache
def one_row_where(vendor: str) -> str:
    """The WHERE clause of `api_row`: one request of one org. `vendor` keys the cache (the
    quoting is the backend's)."""
    qn = connection.ops.quote_name
    table = qn(ApprovalRequest._meta.db_table)
    return f'WHERE {table}."org_id" = %s AND {table}."id" = %s'


class ApprovalRows:
    """Reads ApprovalRow objects, reviews and conflicts included, in one statement whatever
    the page size: requests (conditions on their own columns, newest first) joined to their
    flag key, current flag state and reviews.

    Plain SQL around a queryset's compiled WHERE clause, or a constant one: this runs for every
    list page and every read of one request, and building and compiling the equivalent ORM
    queries (values() of 30 columns, a FilteredRelation, a second query for the reviews) cost
    several times what the database took to answer them."""

    @classmethod
    def page(cls, query, condition: tuple[str, tuple] | None, limit: str) -> list[ApprovalRow]:
        """The rows of the query's conditions and, when given, of one more (SQL and its
        parameters), newest first, within the LIMIT clause given."""
        table = query.model._meta.db_table
        joined = [
            alias for alias, count in query.alias_refcount.items() if count and alias != table
        ]
        if joined or query.order_by not in ((), NEWEST_FIRST):
            raise NotImplementedError(
                "api_page() reads newest first, with conditions on the request's columns"
            )
        try:
            where, params = query.get_compiler(connection=connection).compile(query.where)
        except EmptyResultSet:
            return []
        except FullResultSet:
            where, params = "", []
        if condition is not None:
            extra_sql, extra_params = condition
            # Django parenthesizes a WHERE clause of several conditions already; these keep an OR
            # from taking in the cursor's condition should it ever stop.
            where = f"({where}) AND {extra_sql}" if where else extra_sql
            params = [*params, *extra_params]
        return cls.rows(f"WHERE {where}" if where else "", params, limit)

    @classmethod
    def rows(cls, where: str, params: list, limit: str = "") -> list[ApprovalRow]:
        statement = ApprovalRowsStatement.build(connection.vendor)
        with connection.cursor() as cursor:
            cursor.execute(statement.template.format(where=where, limit=limit), params)
            results = cursor.fetchall()
        # One result row per review (or one for a request without any), newest request first.
        rows = []
        for result in results:
            if not rows or result[0] != rows[-1].id:
                rows.append(cls.approval_row(statement, result))
            if result[-1] is not None:  # the review's id
                rows[-1].reviews.append(cls.review(statement, result))
        return rows

    @staticmethod
    def approval_row(statement: ApprovalRowsStatement, result) -> ApprovalRow:
        row = ApprovalRow()
        values = vars(row)
        # The result goes on past the request's columns; zip stops at the last of them.
        values.update(zip(LIST_COLUMNS, result, strict=False))
        for name, convert in statement.conversions:
            values[name] = convert(values[name])
        row.flag_key, has_state = result[len(LIST_COLUMNS)], result[len(LIST_COLUMNS) + 1]
        row.reviews = []
        row.conflicts = []
        if row.status in OPEN_STATUSES and has_state is not None:
            # Only the payload's fields of the state are read, so only those are converted.
            state = {}
            for field in row.payload:
                index, convert = statement.state_columns[field]
                state[field] = result[index] if convert is None else convert(result[index])
            row.conflicts = conflicts_between(row.payload, row.base_state, state)
        return row

    @staticmethod
    def review(statement: ApprovalRowsStatement, result) -> SimpleNamespace:
        review = SimpleNamespace()
        values = vars(review)
        values.update(zip(REVIEW_COLUMNS, result[statement.review_start :], strict=False))
        for name, convert in statement.review_conversions:
            values[name] = convert(values[name])
        return review


class ApprovalRequestQuerySet(OrgScopedQuerySet):
    def api_page(self, after: tuple | None, start: int, stop: int) -> list[ApprovalRow]:
        """Rows start..stop of this newest-first list as the API shows them (ApprovalRow
        objects, in one statement), after the cursor's (created_at, pk) when one is given. The
        cursor's condition joins the compiled WHERE clause as SQL: added by filter(), building
        and compiling it as an expression was most of a cursor page's extra application
        instructions over page 1 (3 %)."""
        condition = None if after is None else cursor_condition(self.model, *after)
        limit = connection.ops.limit_offset_sql(start, stop)
        return ApprovalRows.page(self.query, condition, limit)

    def api_row(self, org_id, approval_id) -> ApprovalRow:
        """One request of the org as `api_page` reads it; NotFound for a malformed or
        unknown id and for another org's request. It answers every read of one request, so its
        WHERE clause is a constant instead of a queryset to build and compile."""
        org_field, id_field = (ApprovalRequest._meta.get_field(name) for name in ("org", "id"))
        params = [
            org_field.get_db_prep_value(org_id, connection),
            id_field.get_db_prep_value(approval_id_or_404(approval_id), connection),
        ]
        rows = ApprovalRows.rows(one_row_where(connection.vendor), params)
        if not rows:
            raise NotFound("approval request not found")
        return rows[0]

    def newest_first(self):
        return self.order_by("-created_at", "-id")

    def for_review_queue(self):
        """The review queue: pending requests first, the longest waiting at the top, then the
        rest newest first; with what each row shows, in one query."""
        waiting_since = models.Case(
            models.When(status=Status.PENDING, then=models.F("created_at")),
            output_field=models.DateTimeField(),
        )
        return self.select_related("flag", "environment", "project", "requestor").order_by(
            waiting_since.asc(nulls_last=True), "-created_at", "-id"
        )

    def for_review_page(self):
        """Everything the request page shows, in a fixed number of queries."""
        return self.select_related(
            "flag", "environment", "project", "requestor", "reviewer"
        ).prefetch_related(
            models.Prefetch(
                "reviews",
                queryset=Review.objects.select_related("reviewer").order_by("created_at", "id"),
            ),
            models.Prefetch("flag__states", queryset=FlagState.objects.all()),
        )

    def status_counts(self) -> dict[str, int]:
        """{status: number of requests} for every status, zeros included, in one query."""
        counts = dict.fromkeys(Status.values, 0)
        rows = self.order_by().values_list("status").annotate(count=models.Count("pk"))
        counts.update(dict(rows))
        return counts

    def open(self):
        return self.filter(status__in=OPEN_STATUSES)

    def due(self, now=None):
        return self.filter(status=Status.APPROVED, execution_date__lte=now or timezone.now())


@dataclass(frozen=True)
class FieldChange:
    """One flag-state field of a request: its value before and after the change."""

    field: str
    before: object
    after: object
    conflict: dict | None = None

    @property
    def changed(self) -> bool:
        return self.before != self.after


class ApprovalRequest(models.Model):
    """A proposed change to one flag's state in one environment.

    The transition methods (`approve`, `reject`, `cancel`, `apply_when_due`) are the only code
    that writes `status`. Each runs in one transaction on a locked row, checks the source status
    after taking the lock, and writes its audit entry in that same transaction. They lock and
    write through `flagship.sql` rather than `save(update_fields=...)`: statements built once,
    their writes sent together (`sql.writes_together`), because the ORM's query building cost
    more than the database's work on the busiest path of the service.
    """

    audit_resource_type = "approval_request"

    # No single-column indexes on these foreign keys: each leads one of the composite indexes
    # in Meta, which serve the same lookups, and every status change would update them all.
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    org = models.ForeignKey(
        "flagship.Organization",
        on_delete=models.CASCADE,
        related_name="approval_requests",
        db_index=False,
    )
    project = models.ForeignKey(
        "flags.Project", on_delete=models.CASCADE, related_name="approval_requests", db_index=False
    )
    flag = models.ForeignKey(
        "flags.Flag", on_delete=models.CASCADE, related_name="approval_requests", db_index=False
    )
    environment = models.ForeignKey(
        "flags.Environment",
        on_delete=models.CASCADE,
        related_name="approval_requests",
        db_index=False,
    )
    requestor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        related_name="approval_requests",
        db_index=False,
    )
    change_type = models.CharField(max_length=32, choices=ChangeType.choices)
    payload = models.JSONField()
    description = models.TextField(blank=True, max_length=5000)
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.PENDING, editable=False
    )
    required_approvals = models.PositiveSmallIntegerField(default=1, editable=False)
    approvals_count = models.PositiveSmallIntegerField(default=0, editable=False)
    base_state = models.JSONField(default=dict, editable=False)
    base_version = models.PositiveIntegerField(default=1, editable=False)
    execution_date = models.DateTimeField(null=True, blank=True)
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        editable=False,
        help_text="Who decided the request: the last approval, or the rejection.",
    )
    review_note = models.TextField(blank=True, editable=False)
    reviewed_at = models.DateTimeField(null=True, blank=True, editable=False)
    applied_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ApprovalRequestQuerySet.as_manager()

    # What the latest create, review or cancel of this instance read and wrote, for
    # ApprovalRow.after_change; reviews None until then.
    reviews_after_change: list | None = None
    conflicts_after_change: list | tuple = ()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=Status.values), name="approval_status_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(change_type__in=ChangeType.values),
                name="approval_change_type_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(required_approvals__gte=1, required_approvals__lte=10),
                name="approval_required_approvals_1_to_10",
            ),
        ]
        indexes = [
            models.Index(fields=["org", "-created_at", "-id"], name="approval_org_created"),
            models.Index(
                fields=["org", "status", "-created_at", "-id"], name="approval_org_status_created"
            ),
            models.Index(fields=["flag", "environment", "-created_at"], name="approval_flag_env"),
            models.Index(fields=["environment", "-created_at"], name="approval_env_created"),
            models.Index(fields=["requestor", "-created_at"], name="approval_requestor_created"),
            models.Index(fields=["project", "-created_at"], name="approval_project_created"),
            models.Index(
                fields=["execution_date"],
                condition=models.Q(status="approved"),
                name="approval_due",
            ),
        ]

    def __str__(self):
        return f"{self.change_type} {self.flag.key} in {self.environment.slug} ({self.status})"

    # ----- creation ---------------------------------------------------------------------------

    @classmethod
    def propose(
        cls,
        *,
        flag,
        environment,
        requestor,
        change_type: str,
        payload=None,
        description: str = "",
        execution_date=None,
    ) -> "ApprovalRequest":
        permissions.PROPOSE.require(requestor)
        if flag.project.org_id != requestor.org_id:
            raise NotFound("flag not found")
        if environment.project.org_id != requestor.org_id:
            raise NotFound("environment not found")
        if flag.project_id != environment.project_id:
            raise InvalidInput(
                "flag and environment belong to different projects",
                fields={"env_id": ["Must be an environment of the flag's project."]},
            )
        payload = payload_for_change_type(change_type, payload)
        payload = validate_state_changes(flag, payload, prefix="payload")
        if execution_date is not None and execution_date <= timezone.now():
            raise InvalidInput(
                "execution_date must be in the future",
                fields={"execution_date": ["Must be in the future."]},
            )
        with transaction.atomic(), sql.writes_together():
            state = FlagState.objects.of(flag.pk, environment.pk)
            request = cls(
                org_id=flag.project.org_id,
                project_id=flag.project_id,
                flag=flag,
                environment=environment,
                requestor=requestor,
                change_type=change_type,
                payload=payload,
                description=description,
                required_approvals=environment.min_approvals,
                base_state=state.snapshot(payload.keys()),
                base_version=state.version,
                execution_date=execution_date,
            )
            sql.insert([request])
            request._count_move(None, request.status)
            request._audit("approval.created", actor=requestor)
            notify.request_created(request)
        # Its base state is the flag state it was read with: no conflicts yet.
        request.reviews_after_change, request.conflicts_after_change = [], []
        return request

    # ----- reads ------------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def current_state(self) -> FlagState | None:
        """The flag state this request changes, from the prefetched states when available."""
        for state in self.flag.states.all():
            if state.environment_id == self.environment_id:
                return state
        return None

    def conflicts_with(self, state: FlagState | None) -> list[dict]:
        """Fields of the payload whose current value moved away from the base state."""
        if state is None:
            return []
        return conflicts_between(self.payload, self.base_state, state.snapshot(self.payload))

    @property
    def conflicts(self) -> list[dict]:
        """Computed on read while the request is open; closed requests have none."""
        if not self.is_open:
            return []
        return self.conflicts_with(self.current_state)

    def field_changes(self, before: dict | None = None) -> list[FieldChange]:
        """The payload field by field: `before` (by default the current flag state, i.e. what
        approving now would change) against the value after applying the payload."""
        if before is None:
            state = self.current_state
            before = state.snapshot() if state is not None else self.base_state
        conflicts = {conflict["field"]: conflict for conflict in self.conflicts}
        return [
            FieldChange(
                field=field,
                before=before.get(field),
                after=self.payload[field],
                conflict=conflicts.get(field),
            )
            for field in STATE_FIELDS
            if field in self.payload
        ]

    def audit_snapshot(self) -> dict:
        return {
            "status": self.status,
            "flag_key": self.flag.key,
            "environment": self.environment.slug,
            "change_type": self.change_type,
            "payload": self.payload,
            "base_state": self.base_state,
            "required_approvals": self.required_approvals,
            "approvals_count": self.approvals_count,
            "execution_date": self.execution_date,
        }

    # ----- transitions ------------------------------------------------------------------------

    @classmethod
    def by_id(cls, pk) -> "ApprovalRequest":
        """The request with this id, none of its fields read: what a transition needs, since it
        reads the row under its lock (and brings the instance up to date). Building a whole
        instance of defaults cost five times as much. Read nothing but `pk` before the
        transition: any other field would be loaded by a query of its own, without the
        organization check the locked read makes (tests/approvals/test_api_queries.py counts
        the statements)."""
        return cls.from_db(DEFAULT_DB_ALIAS, ["id"], [pk])

    def approve(self, *, by, note: str = "", ignore_conflicts: bool = False) -> None:
        permissions.REVIEW.require(by)
        with transaction.atomic(), sql.writes_together():
            locked, state = self._lock_with_state(by)
            reviews = locked._check_reviewable_by(by)
            conflicts = locked.conflicts_with(state)
            if conflicts and not ignore_conflicts:
                raise StateConflict(
                    "the flag state changed since this request was created; review the "
                    "conflicts and approve with ignore_conflicts to apply anyway",
                    extra={"conflicts": conflicts},
                )
            now = timezone.now()
            reviews.append(locked._add_review(by, ReviewAction.APPROVE, note))
            before = locked.audit_snapshot()
            locked.approvals_count += 1
            updated = ["approvals_count", "updated_at"]
            if locked.approvals_count >= locked.required_approvals:
                locked.reviewer, locked.review_note, locked.reviewed_at = by, note, now
                updated += ["reviewer", "review_note", "reviewed_at", "status"]
                if locked.execution_date is None or locked.execution_date <= now:
                    locked._move_to(Status.APPLIED)
                    locked.applied_at = now
                    updated.append("applied_at")
                else:
                    locked._move_to(Status.APPROVED)
            sql.update(locked, updated)
            entries = [
                locked._audit_entry(
                    "approval.approved",
                    actor=by,
                    before=before,
                    note=note,
                    ignored_conflicts=conflicts if ignore_conflicts else [],
                )
            ]
            if locked.status == Status.APPLIED:
                entries.append(locked._write_payload(state, actor=by))
                notify.request_applied(locked)
            elif locked.status == Status.APPROVED:
                notify.request_approved(locked)
            record_all(entries)
        # Still open (more approvals to come, or scheduled), it conflicts as it did.
        self._take_state_of(locked, reviews=reviews, conflicts=conflicts)

    def reject(self, *, by, note: str = "") -> None:
        permissions.REVIEW.require(by)
        with transaction.atomic(), sql.writes_together():
            locked = self._lock(by)
            reviews = locked._check_reviewable_by(by)
            reviews.append(locked._add_review(by, ReviewAction.REJECT, note))
            before = locked.audit_snapshot()
            locked._move_to(Status.REJECTED)
            locked.reviewer, locked.review_note, locked.reviewed_at = by, note, timezone.now()
            sql.update(locked, ["status", "reviewer", "review_note", "reviewed_at", "updated_at"])
            locked._audit("approval.rejected", actor=by, before=before, note=note)
            notify.request_rejected(locked)
        self._take_state_of(locked, reviews=reviews)

    def cancel(self, *, by, note: str = "") -> None:
        permissions.CANCEL.require(by)
        with transaction.atomic(), sql.writes_together():
            locked = self._lock(by)
            if locked.status not in (Status.PENDING, Status.APPROVED):
                raise StateConflict(NOT_OPEN)
            permissions.require_cancel(by, locked)
            before = locked.audit_snapshot()
            locked._move_to(Status.CANCELLED)
            sql.update(locked, ["status", "updated_at"])
            locked._audit("approval.cancelled", actor=by, before=before, note=note)
            reviews = locked._reviews_so_far()
        self._take_state_of(locked, reviews=reviews)

    def apply_when_due(self, *, now=None) -> bool:
        """Applies an approved request whose execution date has passed, as the system.

        A request that conflicts at that moment is not applied: it goes back to pending with
        its approvals withdrawn, so a reviewer decides again with the conflict in view.
        Returns True when the change was applied. The caller holds the row lock
        (`select_for_update(skip_locked=True)`) inside a transaction.
        """
        now = now or timezone.now()
        with transaction.atomic(), sql.writes_together():
            locked, state = self._lock_with_state()
            due = locked.execution_date is None or locked.execution_date <= now
            if locked.status != Status.APPROVED or not due:
                return False
            conflicts = locked.conflicts_with(state)
            before = locked.audit_snapshot()
            if conflicts:
                locked._move_to(Status.PENDING)
                locked.approvals_count = 0
                locked.reviewer, locked.review_note, locked.reviewed_at = None, "", None
                sql.update(
                    locked,
                    [
                        "status",
                        "approvals_count",
                        "reviewer",
                        "review_note",
                        "reviewed_at",
                        "updated_at",
                    ],
                )
                locked.reviews.filter(is_current=True).update(is_current=False)
                locked._audit(
                    "approval.schedule_conflicted", actor=None, before=before, conflicts=conflicts
                )
                notify.scheduled_apply_failed(locked, conflicts)
                applied = False
            else:
                locked._move_to(Status.APPLIED)
                locked.applied_at = now
                sql.update(locked, ["status", "applied_at", "updated_at"])
                record_all([locked._write_payload(state, actor=None)])
                notify.request_applied(locked)
                applied = True
        self._take_state_of(locked)
        return applied

    # ----- internals --------------------------------------------------------------------------

    def _lock(self, by=None) -> "ApprovalRequest":
        """Re-reads the row under a lock, with its flag and environment. For a person, a request
        of another organization does not exist (and is not locked), whichever interface they
        came through; nor does one deleted since this instance was read."""
        locked = sql.lock_one(type(self), related=("flag", "environment"), **self._key(by))
        if locked is None:
            raise NotFound("approval request not found")
        return locked

    def _lock_with_state(self, by=None) -> tuple["ApprovalRequest", FlagState]:
        """`_lock`, and the flag state the request changes, locked by the same statement. The
        state is locked even when the checks after it refuse the change: a round trip saved
        on every approval costs an approval refused a moment's lock it did not need."""
        locked = sql.lock_with_partner(
            type(self),
            FlagState,
            shared=("flag", "environment"),
            related=("flag", "environment"),
            **self._key(by),
        )
        if locked is None:
            # No such request, or its flag state went missing (`of` creates it again).
            request = self._lock(by)
            return request, FlagState.objects.of(request.flag_id, request.environment_id, lock=True)
        return locked

    def _key(self, by=None) -> dict:
        return {"id": self.pk} if by is None else {"id": self.pk, "org": by.org_id}

    def _audit(self, action: str, *, actor, before=None, **metadata) -> None:
        record_all([self._audit_entry(action, actor=actor, before=before, **metadata)])

    def _audit_entry(self, action: str, *, actor, before=None, **metadata) -> AuditEntry:
        """This request's audit entry: its state after the change, and its id in the metadata."""
        return audit_entry(
            org_id=self.org_id,
            actor=actor,
            action=action,
            resource=self,
            before=before,
            after=self.audit_snapshot(),
            metadata={"approval_id": str(self.pk), **metadata},
        )

    def _take_state_of(
        self, locked: "ApprovalRequest", *, reviews: list | None = None, conflicts=()
    ) -> None:
        """Brings this instance up to date with the row a transition just wrote, without
        reading it again (what refresh_from_db would do), and notes its reviews and conflicts
        for `ApprovalRow.after_change` (reviews None: not known, as after a scheduled apply)."""
        for field in self._meta.concrete_fields:
            setattr(self, field.attname, getattr(locked, field.attname))
        self._state.fields_cache = dict(locked._state.fields_cache)
        self.__dict__.pop("_prefetched_objects_cache", None)
        self.reviews_after_change, self.conflicts_after_change = reviews, list(conflicts)

    def _reviews_so_far(self) -> list["Review"]:
        """Its reviews, oldest first, read only when it can have any. A review is counted in
        approvals_count until a scheduled apply that conflicts withdraws it (`apply_when_due`,
        so only a request with an execution date keeps reviews it does not count), and a
        rejection closes the request."""
        if not self.approvals_count and self.execution_date is None:
            return []
        return list(self.reviews.order_by("created_at", "id"))

    def _add_review(self, by, action: str, note: str) -> "Review":
        review = Review(approval_request=self, reviewer=by, action=action, note=note)
        sql.insert([review])
        return review

    def _check_reviewable_by(self, by) -> list["Review"]:
        """The review checks after the lock, in the SPEC's order: open, not own, not twice.
        Returns the request's reviews so far."""
        if self.status != Status.PENDING:
            raise StateConflict(NOT_PENDING)
        if self.requestor_id == by.pk:
            raise NotPermitted(OWN_REQUEST)
        reviews = self._reviews_so_far()
        if any(review.reviewer_id == by.pk and review.is_current for review in reviews):
            raise StateConflict("you have already reviewed this request")
        return reviews

    def _move_to(self, status: str) -> None:
        if status not in ALLOWED_TRANSITIONS.get(self.status, ()):
            raise StateConflict(NOT_PENDING if self.status != Status.PENDING else NOT_OPEN)
        self._count_move(self.status, status)
        self.status = status

    def _count_move(self, old: str | None, new: str | None) -> None:
        """Keeps the org's per-status totals (StatusTotal) in step, in the same transaction."""
        deltas = {new: 1} if new else {}
        if old:
            deltas[old] = deltas.get(old, 0) - 1
        StatusTotal.objects.shift(self.org_id, deltas)

    def _write_payload(self, state: FlagState, *, actor) -> AuditEntry:
        """Applies the payload to the locked flag state; returns the audit entry to record."""
        before, after = state.write(self.payload)
        return audit_entry(
            org_id=self.org_id,
            actor=actor,
            action="flag.approved_change_applied",
            resource=state,
            before=before,
            after=after,
            metadata={
                "approval_id": str(self.pk),
                "flag_key": self.flag.key,
                "environment": self.environment.slug,
            },
        )


class Review(models.Model):
    """One reviewer's decision on a request. A reviewer has at most one current review per
    request; reviews withdrawn when a scheduled apply found a conflict are kept, not current."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    approval_request = models.ForeignKey(
        ApprovalRequest, on_delete=models.CASCADE, related_name="reviews"
    )
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="reviews"
    )
    action = models.CharField(max_length=16, choices=ReviewAction.choices)
    note = models.TextField(blank=True, max_length=5000)
    is_current = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["approval_request", "reviewer"],
                condition=models.Q(is_current=True),
                name="review_one_current_per_reviewer",
            ),
            models.CheckConstraint(
                condition=models.Q(action__in=ReviewAction.values), name="review_action_valid"
            ),
        ]

    def __str__(self):
        return f"{self.action} by {self.reviewer}"


class EmailStatus(models.TextChoices):
    PENDING = outbox.PENDING, "Pending"
    SENT = "sent", "Sent"
    FAILED = outbox.FAILED, "Failed"


class QueuedEmail(outbox.OutboxItem):
    """The email outbox: one notification about an approval request, written in the transaction
    of the change it announces (so it exists exactly when the change committed) and sent by the
    worker (`approvals.notify.send_next_due`), which retries while the mail server is down.
    Rendering and sending stay out of the request that made the change."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    approval_request = models.ForeignKey(
        ApprovalRequest, on_delete=models.CASCADE, related_name="queued_emails"
    )
    event = models.CharField(max_length=32, help_text="Names the template in emails/.")
    conflicts = models.JSONField(default=list, blank=True)
    status = models.CharField(
        max_length=16, choices=EmailStatus.choices, default=EmailStatus.PENDING
    )
    sent_at = models.DateTimeField(null=True, blank=True)

    objects = outbox.OutboxQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=EmailStatus.values), name="queued_email_status_valid"
            ),
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(status="pending"),
                name="queued_email_due",
            ),
        ]

    def __str__(self):
        return f"{self.event} email for {self.approval_request_id} ({self.status})"
