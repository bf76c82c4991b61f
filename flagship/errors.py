"""The one error hierarchy of the domain. The API, the review page and the admin all show these
messages; `flagship.exceptions` maps them to HTTP status codes in one place."""


class DomainError(Exception):
    """Base of every error a domain rule raises; the message is one human sentence."""

    def __init__(self, message: str, *, fields: dict | None = None, extra: dict | None = None):
        super().__init__(message)
        self.message = message
        self.fields = fields or {}
        self.extra = extra or {}


class InvalidInput(DomainError):
    """The input is malformed or breaks a rule of the data (400)."""


class NotPermitted(DomainError):
    """The caller's role does not allow this action (403)."""


class NotFound(DomainError):
    """The object is absent or belongs to another organization (404)."""


class StateConflict(DomainError):
    """The action is not allowed in the object's current state (409)."""
