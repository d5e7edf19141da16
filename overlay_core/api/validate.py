"""A joined network's settings from JSON, for the API and for networks.json alike, so a
hand-edited file and an API call are held to the same rules.

The checks themselves are the schema's (schema/checks.py), which the console's fake node
runs too; here their FieldError becomes the protocol's `ValidationError(field, rule)`, the
one error the daemon's callers (io/networks.py loading networks.json, the fuzz targets)
expect. The API answers either as
`400 {"error": "validation", "reason": "mtu: must be 1280-9000", "field": "mtu"}`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager

from overlay_core.proto.netfields import ValidationError
from overlay_core.proto.vnet import NetworkSettings

from . import schema


@contextmanager
def validation_errors() -> Iterator[None]:
    """The schema's FieldError as the protocol's ValidationError, same field and rule."""
    try:
        yield
    except schema.FieldError as exc:
        raise ValidationError(exc.field, exc.rule) from None


def check_mss(value: object, field: str = "mss") -> str:
    """ "off", "auto", a number (the clamp) or "fixed:N"; returns the policy string."""
    with validation_errors():
        return schema.check_mss(value, field)


def settings_from_json(body: object, base: NetworkSettings | None = None) -> NetworkSettings:
    """Apply a (partial) settings object to `base` (defaults if None), checking each field.

    mtu and mss may be null: the local override is dropped and the network's value used.
    """
    with validation_errors():
        changes = schema.settings_changes(body)
    return dataclasses.replace(base or NetworkSettings(), **changes)
