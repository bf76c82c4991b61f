"""Readable renderings of flag-state values for the review pages."""

import json

from django import template

from flags.models import MAX_BASIS_POINTS

register = template.Library()

FIELD_LABELS = {
    "enabled": "Enabled",
    "default_value": "Default value",
    "rules": "Targeting rules",
    "percentage_rollout": "Rollout",
    "variants": "Variants",
}

TIMELINE_LABELS = {
    "approval.created": "requested the change",
    "approval.approved": "approved",
    "approval.rejected": "rejected the request",
    "approval.cancelled": "cancelled the request",
    "approval.schedule_conflicted": "found a conflict at the scheduled time; back to pending",
    "flag.approved_change_applied": "applied the change to the flag state",
}


@register.filter
def field_label(field: str) -> str:
    return FIELD_LABELS.get(field, field)


@register.filter
def timeline_label(action: str) -> str:
    return TIMELINE_LABELS.get(action, action)


@register.filter
def basis_points(value) -> str:
    """5000 → "50%", 1234 → "12.34%"."""
    if not isinstance(value, int) or isinstance(value, bool):
        return "—" if value is None else str(value)
    percent = f"{value / 100:.2f}".rstrip("0").rstrip(".")
    return f"{percent}%"


@register.filter
def bar_width(value) -> str:
    """A CSS width for a basis-point value, clamped to 0-100%."""
    if not isinstance(value, int) or isinstance(value, bool):
        return "0%"
    return f"{max(0, min(value, MAX_BASIS_POINTS)) / 100:g}%"


@register.filter
def short_value(value, field: str) -> str:
    """A value on one line: rollout as a percentage, enabled as On/Off, the rest as JSON."""
    if field == "percentage_rollout":
        return basis_points(value)
    if field == "enabled" and isinstance(value, bool):
        return "On" if value else "Off"
    return as_json(value)


@register.filter
def as_json(value) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


@register.filter
def is_list(value) -> bool:
    return isinstance(value, list)
