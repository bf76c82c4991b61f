"""Failed-login throttling per client IP and per email, and write throttling per user, counted
in the shared cache (Redis when REDIS_URL is set, so every app server sees the same counts)."""

import hashlib
import math
import time

from django.conf import settings
from django.core.cache import cache
from rest_framework.exceptions import Throttled
from rest_framework.permissions import SAFE_METHODS
from rest_framework.throttling import BaseThrottle


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
                throttled = Throttled(wait=wait)
                throttled.reason = "too many failed login attempts"
                raise throttled

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


class WriteRateThrottle(BaseThrottle):
    """At most WRITE_THROTTLE_RATE writes per user per fixed window. The counter is one atomic
    increment in the cache, so app servers sharing Redis cannot lose each other's counts."""

    def __init__(self, counters=None):
        self.counters = counters or cache
        self.wait_seconds = None

    def allow_request(self, request, view) -> bool:
        user = request.user
        if request.method in SAFE_METHODS or user is None or not user.is_authenticated:
            return True
        limit, period = settings.WRITE_THROTTLE_RATE
        now = time.time()
        window = int(now // period)
        key = f"write-throttle:{user.pk}:{period}:{window}"
        self.counters.add(key, 0, timeout=period + 1)
        try:
            count = self.counters.incr(key)
        except ValueError:  # the window's key expired between add and incr
            self.counters.set(key, 1, timeout=period + 1)
            count = 1
        if count > limit:
            self.wait_seconds = max(1, math.ceil((window + 1) * period - now))
            return False
        return True

    def wait(self):
        return self.wait_seconds
