"""Where a change came from (ip, user agent, interface), attached to every audit entry written
while a request is being served. Set by AuditContextMiddleware; empty in the worker."""

from contextlib import contextmanager
from contextvars import ContextVar

_request_metadata: ContextVar[dict | None] = ContextVar("audit_request_metadata", default=None)


def current_request_metadata() -> dict:
    return dict(_request_metadata.get() or {})


@contextmanager
def request_metadata(**metadata):
    token = _request_metadata.set(metadata)
    try:
        yield
    finally:
        _request_metadata.reset(token)
