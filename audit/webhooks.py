"""Sending webhook deliveries: target checks, signing, and the claim-send-record cycle the worker
runs. Each delivery is claimed in its own committed transaction before it is sent, so several
workers never send one delivery at the same time and a worker that dies mid-send leaves it to
come due again."""

import hashlib
import hmac
import http.client
import ipaddress
import json
import logging
import socket
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone

from audit.models import DeliveryStatus, WebhookDelivery
from flagship import outbox
from flagship.errors import InvalidInput

logger = logging.getLogger("flagship.webhooks")

# Cloud metadata services outside the ranges refused anyway (Alibaba's sits in 100.64.0.0/10,
# AWS's IPv6 one in fd00::/8); listed so they stay refused even if those rules change.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(address)
    for address in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)
USER_AGENT = "Flagship-Webhooks/1"


class UnsafeTarget(InvalidInput):
    """The URL is not http(s) or its host resolves to an address webhooks may not reach."""


def refused_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if address in METADATA_ADDRESSES:
        return True
    # Not globally routable covers loopback, link-local, private, shared and unspecified space.
    return not address.is_global or address.is_multicast


def resolve_target(url: str) -> tuple[str, str, int, list[str]]:
    """Returns (scheme, host, port, addresses to connect to) or raises UnsafeTarget.

    The addresses returned are the ones checked, and the sender connects only to them, so a DNS
    answer that changes between the check and the request cannot redirect it.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UnsafeTarget(
            "url is not a valid URL", fields={"url": ["Enter a valid URL."]}
        ) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeTarget(
            "url must be an http or https URL", fields={"url": ["Must be an http(s) URL."]}
        )
    host = parts.hostname
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise UnsafeTarget(
            f"url host {host!r} could not be resolved",
            fields={"url": ["The host could not be resolved."]},
        ) from None
    addresses = [ipaddress.ip_address(answer[4][0].split("%")[0]) for answer in answers]
    if not settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS and any(map(refused_address, addresses)):
        raise UnsafeTarget(
            f"url host {host!r} resolves to a loopback, link-local, private or metadata "
            "address, which webhooks may not reach",
            fields={"url": ["Must resolve to a public address."]},
        )
    return parts.scheme, host, port, list(dict.fromkeys(str(address) for address in addresses))


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def encode_body(payload: dict) -> bytes:
    return json.dumps(payload, cls=DjangoJSONEncoder, separators=(",", ":")).encode()


@dataclass
class Outcome:
    status_code: int | None = None
    error: str = ""

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def post(url: str, body: bytes, headers: dict) -> Outcome:
    """POSTs without following redirects, to the address the target check approved."""
    try:
        scheme, host, port, addresses = resolve_target(url)
    except UnsafeTarget as exc:
        return Outcome(error=exc.message)
    parts = urlsplit(url)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    timeout = settings.WEBHOOK_TIMEOUT_SECONDS
    connection_class = (
        http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
    )
    connection = connection_class(host, port, timeout=timeout)
    # http.client would resolve the host again; pin it to the checked addresses (TLS still
    # verifies the certificate against the host name).
    connection._create_connection = lambda _address, timeout, *args: connect_first(
        addresses, port, timeout
    )
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        response.read(64 * 1024)
        outcome = Outcome(status_code=response.status)
        if not outcome.delivered:
            outcome.error = f"HTTP {response.status} {response.reason}".strip()
        return outcome
    except (OSError, http.client.HTTPException) as exc:
        return Outcome(error=f"{type(exc).__name__}: {exc}"[:1000] or type(exc).__name__)
    finally:
        connection.close()


def connect_first(addresses: list[str], port: int, timeout: float) -> socket.socket:
    """Tries each address in resolver order, as socket.create_connection does for a name."""
    error: OSError | None = None
    for address in addresses:
        try:
            return socket.create_connection((address, port), timeout)
        except OSError as exc:
            error = exc
    raise error or OSError(f"no address to connect to on port {port}")


def claim_lease() -> timedelta:
    """How long a claimed delivery is left alone before another worker may retry it: long
    enough for one send to time out, short enough that a crashed worker's delivery is retried
    soon."""
    return timedelta(seconds=3 * settings.WEBHOOK_TIMEOUT_SECONDS)


def claim_next_due() -> WebhookDelivery | None:
    return outbox.claim_next_due(
        WebhookDelivery.objects.due().select_related("webhook"), claim_lease()
    )


def deliver_next_due() -> WebhookDelivery | None:
    """Sends one due delivery and records the outcome; None when nothing is due."""
    delivery = claim_next_due()
    if delivery is None:
        return None
    webhook = delivery.webhook
    if not webhook.is_active:
        outcome = Outcome(error="webhook is inactive")
    else:
        body = encode_body(delivery.payload)
        outcome = post(
            webhook.url,
            body,
            {
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                "X-Flagship-Event": delivery.event_type,
                "X-Flagship-Delivery": str(delivery.pk),
                "X-Flagship-Signature": signature(webhook.secret, body),
            },
        )
    record_outcome(delivery, outcome)
    return delivery


def record_outcome(delivery: WebhookDelivery, outcome: Outcome) -> None:
    changes = {"last_status_code": outcome.status_code, "last_error": outcome.error[:2000]}
    if outcome.delivered:
        changes |= {
            "status": DeliveryStatus.DELIVERED,
            "delivered_at": timezone.now(),
            "next_attempt_at": None,
        }
    else:
        changes |= delivery.after_failure(
            max_attempts=settings.WEBHOOK_MAX_ATTEMPTS,
            retry_base_seconds=settings.WEBHOOK_RETRY_BASE_SECONDS,
            give_up=not delivery.webhook.is_active,
        )
    delivery.settle(**changes)
    verdict = {
        DeliveryStatus.DELIVERED: "delivered",
        DeliveryStatus.FAILED: "failed for good",
    }.get(delivery.status) or f"failed, retry at {delivery.next_attempt_at:%H:%M:%S}"
    logger.info(
        "webhook delivery %s (%s to %s) attempt %s/%s %s%s",
        delivery.pk,
        delivery.event_type,
        delivery.webhook.url,
        delivery.attempts,
        settings.WEBHOOK_MAX_ATTEMPTS,
        verdict,
        f": {outcome.error}" if outcome.error else "",
    )
