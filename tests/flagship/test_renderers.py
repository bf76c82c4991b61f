import uuid
from datetime import UTC, datetime
from decimal import Decimal

from rest_framework.renderers import JSONRenderer

from flagship.renderers import FastJSONRenderer

SAMPLE = {
    "data": [
        {
            "id": uuid.UUID("0d5c2b9e-6f7e-4a52-9d1c-5c8f2b1e3a40"),
            "at": datetime(2026, 4, 1, 12, 30, 5, 120000, tzinfo=UTC),
            "price": Decimal("1.50"),
            "name": "Zürich ✓",
            "nested": {"ratio": 0.1, "list": [1, None, True]},
        }
    ],
    "total": 1,
}


def test_fast_renderer_writes_the_same_bytes_as_drf():
    assert FastJSONRenderer().render(SAMPLE) == JSONRenderer().render(SAMPLE)


def test_fast_renderer_falls_back_for_integers_beyond_64_bits():
    data = {"big": 2**70}

    assert FastJSONRenderer().render(data) == JSONRenderer().render(data)


def test_fast_renderer_honours_an_indent_request():
    rendered = FastJSONRenderer().render({"a": 1}, "application/json; indent=2", {"request": None})

    assert rendered == b'{\n  "a": 1\n}'
