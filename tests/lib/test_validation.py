"""The one wording of pydantic errors (sre4ai_web/lib/validation.py) that forms, the API and commands show."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from sre4ai_web.lib.validation import pydantic_errors, pydantic_message, pydantic_messages


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    size: int = 0

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("give the item a name")
        return value

    @model_validator(mode="after")
    def _small(self) -> Item:
        if self.size > 10:
            raise ValueError("size must not exceed 10")
        return self


def error_of(data: object) -> ValidationError:
    with pytest.raises(ValidationError) as raised:
        Item.model_validate(data)
    return raised.value


def test_our_validators_speak_without_pydantic_prefix_and_each_error_says_where() -> None:
    exc = error_of({"name": " ", "size": "x"})
    name, size = pydantic_messages(exc)
    assert name == "name: give the item a name"
    assert size.startswith("size: Input should be a valid integer")
    assert pydantic_message(exc) == "; ".join(pydantic_messages(exc))


def test_an_error_about_the_whole_value_is_named_by_the_caller_and_has_no_location_for_forms() -> None:
    exc = error_of({"name": "box", "size": 11})
    assert pydantic_message(exc) == "size must not exceed 10"
    assert pydantic_message(exc, root="item") == "item: size must not exceed 10"
    assert pydantic_errors(exc) == [((), "size must not exceed 10")]


def test_an_unknown_field_lists_the_allowed_ones_when_the_caller_gives_them() -> None:
    exc = error_of({"name": "box", "colour": "red"})
    assert pydantic_message(exc) == "colour: Extra inputs are not permitted"
    assert pydantic_message(exc, fields=("name", "size")) == "colour: unknown field (allowed: name, size)"
    assert pydantic_errors(exc, fields=("name", "size")) == [(("colour",), "unknown field (allowed: name, size)")]
