"""The support API's request bodies: numbers that are no numbers are refused."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from server.schemas.support import CustomerIn, ProductIn, ReplyIn


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_nan_and_infinity_are_refused_in_attributes_and_prices(value: float) -> None:
    with pytest.raises(ValidationError, match="attributes"):
        CustomerIn.model_validate({"name": "Jane", "attributes": {"score": value}})
    with pytest.raises(ValidationError, match="price"):
        ProductIn.model_validate({"name": "Kettle", "category": "kitchen", "price": value})


def test_a_price_beyond_any_real_one_is_refused() -> None:
    with pytest.raises(ValidationError, match="price"):
        ProductIn.model_validate({"name": "Kettle", "category": "kitchen", "price": 1e18})


def test_the_reply_seed_is_an_integer_not_a_string() -> None:
    with pytest.raises(ValidationError, match="seed"):
        ReplyIn.model_validate({"customer_id": "c-1", "message": "hi", "seed": "1"})
