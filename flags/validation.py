"""Validation of flag-state changes, shared by direct edits and approval-request payloads, so a
change that would be refused as a direct edit is refused at request creation too."""

import math
import re
import uuid

from flags.models import MAX_BASIS_POINTS, STATE_FIELDS, FlagType
from flagship.errors import InvalidInput

RULE_FIELDS = ("id", "priority", "description", "conditions", "percentage", "value", "match_type")
CONDITION_FIELDS = ("attribute", "operator", "values")
VARIANT_FIELDS = ("key", "value", "weight")
OPERATORS = (
    "equals",
    "not_equals",
    "in",
    "not_in",
    "contains",
    "not_contains",
    "starts_with",
    "ends_with",
    "gt",
    "gte",
    "lt",
    "lte",
    "regex",
)
MATCH_TYPES = ("all", "any")
# Numbers beyond this lose precision in JavaScript clients and overflow float conversion.
MAX_SAFE_INTEGER = 2**53 - 1
MAX_RULES = 100
MAX_VARIANTS = 50
MAX_CONDITIONS = 20
MAX_VALUES = 500


def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def value_matches_type(flag_type: str, value) -> bool:
    if flag_type == FlagType.BOOLEAN:
        return isinstance(value, bool)
    if flag_type == FlagType.STRING:
        return isinstance(value, str)
    if flag_type == FlagType.NUMBER:
        if is_int(value):
            return abs(value) <= MAX_SAFE_INTEGER
        return isinstance(value, float) and math.isfinite(value)
    return True  # json: any JSON value


def type_mismatch(flag_type: str, value) -> str | None:
    """The message for a value (default, variant or rule value) that the flag cannot serve."""
    if value_matches_type(flag_type, value):
        return None
    return f"Must be a {flag_type} value, to match the flag's type."


def check_basis_points(value, errors: list[str]) -> None:
    if not is_int(value):
        errors.append("Must be an integer number of basis points (0-10000).")
    elif not 0 <= value <= MAX_BASIS_POINTS:
        errors.append("Must be between 0 and 10000 (basis points, 10000 = 100%).")


def unknown_keys_message(given: dict, allowed: tuple[str, ...]) -> str | None:
    unknown = sorted(set(given) - set(allowed))
    if not unknown:
        return None
    return f"Unknown field(s): {', '.join(unknown)}. Allowed: {', '.join(allowed)}."


class StateChangeValidator:
    def __init__(self, flag, prefix: str):
        self.flag = flag
        self.prefix = prefix
        self.errors: dict[str, list[str]] = {}

    def error(self, path: str, message: str) -> None:
        name = f"{self.prefix}.{path}" if self.prefix else path
        self.errors.setdefault(name, []).append(message)

    def typed_value(self, path: str, value) -> None:
        problem = type_mismatch(self.flag.flag_type, value)
        if problem:
            self.error(path, problem)

    def validate(self, changes) -> dict:
        if not isinstance(changes, dict):
            raise InvalidInput(
                f"{self.prefix or 'body'} must be a JSON object",
                fields={self.prefix or "non_field_errors": ["Must be a JSON object."]},
            )
        message = unknown_keys_message(changes, STATE_FIELDS)
        if message:
            for key in sorted(set(changes) - set(STATE_FIELDS)):
                self.error(key, message)
        cleaned = {}
        if "enabled" in changes:
            if not isinstance(changes["enabled"], bool):
                self.error("enabled", "Must be true or false.")
            cleaned["enabled"] = changes["enabled"]
        if "default_value" in changes:
            if changes["default_value"] is not None:
                self.typed_value("default_value", changes["default_value"])
            cleaned["default_value"] = changes["default_value"]
        if "percentage_rollout" in changes:
            problems: list[str] = []
            check_basis_points(changes["percentage_rollout"], problems)
            for problem in problems:
                self.error("percentage_rollout", problem)
            cleaned["percentage_rollout"] = changes["percentage_rollout"]
        if "variants" in changes:
            cleaned["variants"] = self.variants(changes["variants"])
        if "rules" in changes:
            cleaned["rules"] = self.rules(changes["rules"])
        if self.errors:
            field, messages = next(iter(self.errors.items()))
            raise InvalidInput(f"{field}: {messages[0]}", fields=self.errors)
        return cleaned

    def variants(self, variants):
        if not isinstance(variants, list):
            self.error("variants", "Must be a list of {key, value, weight} objects.")
            return variants
        if len(variants) > MAX_VARIANTS:
            self.error("variants", f"At most {MAX_VARIANTS} variants.")
            return variants
        seen_keys = set()
        total_weight = 0
        for index, variant in enumerate(variants):
            path = f"variants.{index}"
            if not isinstance(variant, dict):
                self.error(path, "Must be a {key, value, weight} object.")
                continue
            message = unknown_keys_message(variant, VARIANT_FIELDS)
            if message:
                self.error(path, message)
            key = variant.get("key")
            if not isinstance(key, str) or not key or len(key) > 100:
                self.error(f"{path}.key", "Must be a non-empty string of at most 100 characters.")
            elif key in seen_keys:
                self.error(f"{path}.key", f"Duplicate variant key '{key}'.")
            else:
                seen_keys.add(key)
            if "value" not in variant:
                self.error(f"{path}.value", "This field is required.")
            else:
                self.typed_value(f"{path}.value", variant["value"])
            problems: list[str] = []
            check_basis_points(variant.get("weight"), problems)
            for problem in problems:
                self.error(f"{path}.weight", problem)
            if not problems:
                total_weight += variant["weight"]
        variant_errors = any(name.startswith(self._full("variants")) for name in self.errors)
        if variants and not variant_errors and total_weight != MAX_BASIS_POINTS:
            self.error("variants", f"Weights must sum to 10000; they sum to {total_weight}.")
        return variants

    def rules(self, rules):
        if not isinstance(rules, list):
            self.error("rules", "Must be a list of rule objects.")
            return rules
        if len(rules) > MAX_RULES:
            self.error("rules", f"At most {MAX_RULES} rules.")
            return rules
        cleaned = []
        seen_ids = set()
        for index, rule in enumerate(rules):
            path = f"rules.{index}"
            if not isinstance(rule, dict):
                self.error(path, "Must be a rule object.")
                continue
            message = unknown_keys_message(rule, RULE_FIELDS)
            if message:
                self.error(path, message)
            rule_id = rule.get("id") or str(uuid.uuid4())
            if not isinstance(rule_id, str) or len(rule_id) > 100:
                self.error(f"{path}.id", "Must be a string of at most 100 characters.")
            elif rule_id in seen_ids:
                self.error(f"{path}.id", f"Duplicate rule id '{rule_id}'.")
            seen_ids.add(rule_id)
            priority = rule.get("priority", index)
            if not is_int(priority) or priority < 0:
                self.error(f"{path}.priority", "Must be a non-negative integer.")
            description = rule.get("description", "")
            if not isinstance(description, str) or len(description) > 500:
                self.error(f"{path}.description", "Must be a string of at most 500 characters.")
            percentage = rule.get("percentage", MAX_BASIS_POINTS)
            problems: list[str] = []
            check_basis_points(percentage, problems)
            for problem in problems:
                self.error(f"{path}.percentage", problem)
            if rule.get("value") is not None:
                self.typed_value(f"{path}.value", rule["value"])
            match_type = rule.get("match_type", "all")
            if match_type not in MATCH_TYPES:
                self.error(f"{path}.match_type", "Must be one of: all, any.")
            self.conditions(path, rule.get("conditions"))
            cleaned.append(
                {
                    "id": rule_id,
                    "priority": priority,
                    "description": description,
                    "conditions": rule.get("conditions"),
                    "percentage": percentage,
                    "value": rule.get("value"),
                    "match_type": match_type,
                }
            )
        return cleaned

    def conditions(self, path: str, conditions) -> None:
        if not isinstance(conditions, list) or not conditions:
            self.error(f"{path}.conditions", "Must be a non-empty list of conditions.")
            return
        if len(conditions) > MAX_CONDITIONS:
            self.error(f"{path}.conditions", f"At most {MAX_CONDITIONS} conditions.")
            return
        for index, condition in enumerate(conditions):
            where = f"{path}.conditions.{index}"
            if not isinstance(condition, dict):
                self.error(where, "Must be an {attribute, operator, values} object.")
                continue
            message = unknown_keys_message(condition, CONDITION_FIELDS)
            if message:
                self.error(where, message)
            attribute = condition.get("attribute")
            if not isinstance(attribute, str) or not attribute or len(attribute) > 200:
                self.error(f"{where}.attribute", "Must be a non-empty string.")
            operator = condition.get("operator")
            if operator not in OPERATORS:
                self.error(f"{where}.operator", f"Must be one of: {', '.join(OPERATORS)}.")
            values = condition.get("values")
            if (
                not isinstance(values, list)
                or not values
                or len(values) > MAX_VALUES
                or not all(isinstance(value, str) for value in values)
            ):
                self.error(f"{where}.values", f"Must be a list of 1 to {MAX_VALUES} strings.")
            elif operator == "regex":
                for value in values:
                    try:
                        re.compile(value)
                    except re.error:
                        self.error(f"{where}.values", f"Not a valid regular expression: {value}")

    def _full(self, path: str) -> str:
        return f"{self.prefix}.{path}" if self.prefix else path


def validate_state_changes(flag, changes, *, prefix: str = "") -> dict:
    """Returns the cleaned changes or raises InvalidInput naming every bad field."""
    return StateChangeValidator(flag, prefix).validate(changes)
