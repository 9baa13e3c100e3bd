"""StrictCharField: only JSON strings, and its length limit applies to the string as sent (a
fuzzer sent a reason of one letter and 1,500 tabs, which DRF measured after trimming)."""

from __future__ import annotations

import pytest
from rest_framework.exceptions import ValidationError

from flags.api.serializers import StrictCharField, reason_field
from flags.history import REASON_MAX_LENGTH


def test_a_value_past_the_limit_is_refused_even_if_only_its_whitespace_is() -> None:
    field = reason_field()
    with pytest.raises(ValidationError, match=str(REASON_MAX_LENGTH)):
        field.run_validation("ô" + "\t" * REASON_MAX_LENGTH)
    assert field.run_validation("  ô  ") == "ô"  # within the limit, trimmed as before
    assert field.run_validation("x" * REASON_MAX_LENGTH) == "x" * REASON_MAX_LENGTH


@pytest.mark.parametrize("value", [12, 1.5, True, None, ["a"], {"a": 1}])
def test_only_strings_are_taken(value: object) -> None:
    field = StrictCharField(max_length=5, allow_null=False)
    with pytest.raises(ValidationError):
        field.run_validation(value)
