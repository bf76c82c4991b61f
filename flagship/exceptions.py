"""Maps every error to the `{"error": ..., "fields": ...}` shape and its status, in one place."""

import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.db import IntegrityError, InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from flagship.errors import DomainError, InvalidInput, NotFound, NotPermitted, StateConflict

logger = logging.getLogger(__name__)

DOMAIN_STATUS = {
    InvalidInput: status.HTTP_400_BAD_REQUEST,
    NotPermitted: status.HTTP_403_FORBIDDEN,
    NotFound: status.HTTP_404_NOT_FOUND,
    StateConflict: status.HTTP_409_CONFLICT,
}


def flatten_field_errors(detail, prefix: str = "") -> dict[str, list[str]]:
    """Turns DRF's nested error detail into {"payload.rules.0.value": ["..."]}."""
    flat: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = str(key) if not prefix else f"{prefix}.{key}"
            if key == "non_field_errors":
                name = prefix or "non_field_errors"
            for field, messages in flatten_field_errors(value, name).items():
                flat.setdefault(field, []).extend(messages)
    elif isinstance(detail, list):
        if all(not isinstance(item, dict | list) for item in detail):
            flat[prefix or "non_field_errors"] = [str(item) for item in detail]
        else:
            for index, item in enumerate(detail):
                if not item:
                    continue
                name = f"{prefix}.{index}" if prefix else str(index)
                for field, messages in flatten_field_errors(item, name).items():
                    flat.setdefault(field, []).extend(messages)
    else:
        flat[prefix or "non_field_errors"] = [str(detail)]
    return flat


def validation_body(fields: dict[str, list[str]], message: str | None = None) -> dict:
    if message is None:
        field, messages = next(iter(fields.items()), ("request", ["is invalid"]))
        first = messages[0] if messages else "is invalid"
        message = first if field == "non_field_errors" else f"{field}: {first}"
    return {"error": message, "fields": fields}


def domain_error_response(exc: DomainError) -> Response:
    status_code = next(
        (code for cls, code in DOMAIN_STATUS.items() if isinstance(exc, cls)),
        status.HTTP_400_BAD_REQUEST,
    )
    body = {"error": exc.message}
    if exc.fields:
        body["fields"] = exc.fields
    body.update(exc.extra)
    return Response(body, status=status_code)


def api_exception_handler(exc, context):
    if isinstance(exc, DomainError):
        return domain_error_response(exc)
    if isinstance(exc, OperationalError | InterfaceError):
        # The database went away (restart, failover, killed connection). The transaction was
        # rolled back, so nothing is half-written and the client may simply retry.
        logger.warning("Database unavailable in %s: %s", context.get("view"), exc)
        return Response(
            {"error": "the database is unavailable; nothing was changed, please retry"},
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": "1"},
        )
    if isinstance(exc, IntegrityError):
        # A uniqueness race the validation could not see (two creates at once).
        return Response(
            {"error": "the change conflicts with existing data; reload and try again"},
            status=status.HTTP_409_CONFLICT,
        )
    if isinstance(exc, RequestDataTooBig):
        return Response(
            {"error": "request body is too large"},
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, exceptions.Throttled):
        reason = getattr(exc, "reason", "too many requests")
        return Response(
            {"error": f"{reason}; retry in {exc.wait} seconds"},
            status=status.HTTP_429_TOO_MANY_REQUESTS,
            headers={"Retry-After": str(exc.wait)},
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound("not found")
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None:
        logger.exception("Unhandled error in %s", context.get("view"))
        return Response(
            {"error": "internal server error"}, status=status.HTTP_500_INTERNAL_SERVER_ERROR
        )

    if isinstance(exc, exceptions.ValidationError):
        response.data = validation_body(flatten_field_errors(exc.detail))
    elif isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        response.data = {"error": authentication_message(exc)}
    else:
        detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
        response.data = {"error": sentence(detail)}
    return response


def authentication_message(exc) -> str:
    detail = exc.detail
    if isinstance(detail, dict):
        detail = detail.get("detail", "authentication failed")
    return sentence(detail)


def sentence(detail) -> str:
    if isinstance(detail, list | tuple):
        detail = detail[0] if detail else ""
    if isinstance(detail, dict):
        detail = detail.get("detail") or next(iter(detail.values()), "")
    text = str(detail).strip()
    if not text:
        return "error"
    # "Not found." -> "not found", but "JSON parse error" keeps its acronym.
    if len(text) > 1 and text[1].islower():
        text = text[:1].lower() + text[1:]
    return text.rstrip(".")


def json_not_found(request, exception=None):
    return JsonResponse({"error": "not found"}, status=404)


def csrf_failure(request, reason=""):
    if request.path.startswith("/v1/") or request.path in ("/v1", "/healthz"):
        # The API takes bearer tokens, never cookies; a CSRF refusal here means no such route.
        return JsonResponse({"error": "not found"}, status=404)
    from django.views.csrf import csrf_failure as html_csrf_failure

    return html_csrf_failure(request, reason)


def json_server_error(request):
    return JsonResponse({"error": "internal server error"}, status=500)
