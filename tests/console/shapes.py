"""assert_shape: a JSON value checked against a TypedDict of overlay_core.api.schema."""

from __future__ import annotations

import enum
import types
import typing
from typing import Any, NotRequired, get_args, get_origin, get_type_hints


def assert_shape(value: object, shape: Any, where: str = "$") -> None:
    """`value` has exactly the keys and value types of the schema's TypedDict `shape`."""
    origin = get_origin(shape)
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in get_args(shape):
            try:
                assert_shape(value, option, where)
                return
            except AssertionError as exc:
                errors.append(str(exc))
        raise AssertionError(f"{where}: {value!r} fits none of {shape}: {errors}")
    if shape is type(None):
        assert value is None, f"{where}: {value!r} is not None"
    elif shape is float:
        assert isinstance(value, int | float) and not isinstance(value, bool), where
    elif origin is list:
        assert isinstance(value, list), f"{where}: not a list"
        for i, item in enumerate(value):
            assert_shape(item, get_args(shape)[0], f"{where}[{i}]")
    elif origin is dict:
        assert isinstance(value, dict), f"{where}: not an object"
        for key, item in value.items():
            assert_shape(item, get_args(shape)[1], f"{where}.{key}")
    elif isinstance(shape, type) and issubclass(shape, dict):  # a TypedDict
        hints = get_type_hints(shape, include_extras=True)
        assert isinstance(value, dict), f"{where}: not an object"
        optional = {key for key, hint in hints.items() if get_origin(hint) is NotRequired}
        hints = {key: get_args(h)[0] if key in optional else h for key, h in hints.items()}
        assert set(hints) - optional <= set(value) <= set(hints), (
            f"{where}: keys {sorted(value)} != {sorted(hints)}"
        )
        for key, item in value.items():
            assert_shape(item, hints[key], f"{where}.{key}")
    elif shape is object:
        return
    elif isinstance(shape, type) and issubclass(shape, enum.Enum):  # a StrEnum: one word
        words = {member.value for member in shape}
        assert value in words, f"{where}: {value!r} is not one of {shape.__name__} {words}"
    else:
        assert isinstance(value, shape), f"{where}: {value!r} is not {shape}"
