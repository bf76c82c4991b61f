"""Failed-login throttling per client IP and per email, counted in the shared cache (Redis when
REDIS_URL is set, so every app server sees the same counts)."""

import hashlib
import time

from django.conf import settings
from django.core.cache import cache
from rest_framework.exceptions import Throttled


def _key(kind: str, value: str) -> str:
    digest = hashlib.sha256(value.lower().encode()).hexdigest()[:32]
    return f"login-failures:{kind}:{digest}"


class FailedLoginThrottle:
    def __init__(self, *, ip: str, email: str):
        self.keys = [(_key("ip", ip), settings.LOGIN_FAILURES_PER_IP)]
        if email:
            self.keys.append((_key("email", email), settings.LOGIN_FAILURES_PER_EMAIL))
        self.window = settings.LOGIN_FAILURE_WINDOW_SECONDS

    def check(self) -> None:
        """Raises 429 with Retry-After while either counter is at its limit."""
        for key, limit in self.keys:
            entry = cache.get(key)
            if entry and entry["count"] >= limit:
                wait = max(1, int(entry["window_ends"] - time.time()))
                raise Throttled(wait=wait, detail="too many failed login attempts; try later")

    def record_failure(self) -> None:
        now = time.time()
        for key, _limit in self.keys:
            entry = cache.get(key)
            if not entry or entry["window_ends"] <= now:
                entry = {"count": 0, "window_ends": now + self.window}
            entry["count"] += 1
            cache.set(key, entry, timeout=int(entry["window_ends"] - now) + 1)

    def reset_email(self) -> None:
        if len(self.keys) > 1:
            cache.delete(self.keys[1][0])
