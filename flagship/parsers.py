from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


def contains_nul(value) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(contains_nul(key) or contains_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(contains_nul(item) for item in value)
    return False


class StrictJSONParser(JSONParser):
    """JSON bodies without NUL characters anywhere: PostgreSQL cannot store them in text or
    jsonb, so they are refused up front with a 400 instead of failing at write time."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON is nested too deeply") from None
        if contains_nul(data):
            raise ParseError("JSON strings must not contain NUL (\\u0000) characters")
        return data
