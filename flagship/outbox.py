"""What the worker's outboxes (queued emails, webhook deliveries) share.

An outbox row is written in the transaction of the change it announces, so it exists exactly
when the change committed. The worker then claims one due row in a transaction of its own that
commits before anything is sent (so two workers never send the same row at once, and a worker
that dies mid-send leaves it to come due again after the lease), sends it, and settles the
outcome: done, retried later with exponential back-off, or failed for good.
"""

from datetime import timedelta

from django.db import models, transaction
from django.utils import timezone

# Every outbox's status choices include these two (each names its own "done").
PENDING = "pending"
FAILED = "failed"


class OutboxQuerySet(models.QuerySet):
    def due(self, now=None):
        return self.filter(status=PENDING, next_attempt_at__lte=now or timezone.now())


class OutboxItem(models.Model):
    """The bookkeeping of one outbox row. Subclasses declare `status` with their choices."""

    attempts = models.PositiveSmallIntegerField(default=0)
    # When the worker may next try; None once done or failed for good.
    next_attempt_at = models.DateTimeField(default=timezone.now, null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True

    def after_failure(self, *, max_attempts: int, retry_base_seconds: int, give_up=False) -> dict:
        """The changes after a failed attempt: attempt n is retried after
        retry_base_seconds * 2**(n-1), until the last attempt (or `give_up`) fails it for good."""
        if give_up or self.attempts >= max_attempts:
            return {"status": FAILED, "next_attempt_at": None}
        delay = timedelta(seconds=retry_base_seconds * 2 ** (self.attempts - 1))
        return {"next_attempt_at": timezone.now() + delay}

    def settle(self, **changes) -> None:
        """Writes the outcome of this worker's attempt, only while its claim stands: a worker
        that stalled past its lease must not overwrite the result of the one that retried."""
        type(self).objects.filter(pk=self.pk, status=PENDING, attempts=self.attempts).update(
            **changes, updated_at=timezone.now()
        )
        for field, value in changes.items():
            setattr(self, field, value)


def claim_next_due(due: models.QuerySet, lease: timedelta):
    """Takes the first row of `due` (an outbox's `due()` queryset, with what sending needs
    selected) and moves its next attempt past the lease, in a transaction that commits before
    anything is sent; None when nothing is due or every due row is held by another worker."""
    # A plain read first: an idle worker then never opens a write transaction (on SQLite that
    # would take the database's write lock every poll).
    if not due.exists():
        return None
    with transaction.atomic():
        item = (
            due.select_for_update(skip_locked=True, of=("self",))
            .order_by("next_attempt_at", "created_at")
            .first()
        )
        if item is None:
            return None
        item.attempts += 1
        item.next_attempt_at = timezone.now() + lease
        item.save(update_fields=["attempts", "next_attempt_at", "updated_at"])
    return item
