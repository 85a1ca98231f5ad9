"""Typed options from any source, one way: the run config and the simulator's options are
pydantic models built on :class:`Options`. Values from a config file or JSON are checked
as they are (a whole number where a count is expected, a list where a list is expected,
never a string split into characters); strings typed on a command line are first turned
into values by :func:`parse_string`, from the field's declared type. Errors
(:class:`~intermodal.errors.ConfigError`) name the source and the key; so does
:func:`whole_number`, the one check of a count passed to a function.
"""

from __future__ import annotations

import json
import os
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, overload

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, Strict, TypeAdapter, ValidationError
from pydantic.json_schema import JsonDict

from .errors import ConfigError, validation_message

__all__ = ["Options", "parse_string", "whole_number", "path_argument", "instance_argument", "RAW_STRING"]

# A field marked with this (``Field(json_schema_extra=RAW_STRING)``) takes a command-line
# string as it is: its own validator reads forms such as "10-19".
RAW_STRING: JsonDict = {"cli": "raw"}


def _without_none(annotation):
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        return inner[0] if len(inner) == 1 else annotation, True
    return annotation, False


def _base_type(annotation):
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def parse_string(text: str, annotation, where: str) -> Any:
    """A command-line string as a value of the type ``annotation``: ``"5"`` → 5,
    ``"true"`` → True, ``"a,b"`` or ``'["a", "b"]'`` → ["a", "b"], JSON for mappings,
    ``"none"`` → None where None is allowed. Raises :class:`ConfigError` naming ``where``."""
    annotation, optional = _without_none(_base_type(annotation))
    annotation = _base_type(annotation)
    stripped = text.strip()
    if optional and stripped.lower() in ("none", "null", ""):
        return None
    origin = typing.get_origin(annotation) or annotation
    try:
        if annotation is bool:
            return {"true": True, "false": False, "yes": True, "no": False}[stripped.lower()]
        if annotation is int:
            return int(stripped)
        if annotation is float:
            return float(stripped)
        if origin in (list, tuple):
            if stripped.startswith("["):
                return json.loads(stripped)
            (item,) = typing.get_args(annotation)[:1] or (str,)
            return [parse_string(part, item, where) for part in stripped.split(",") if part.strip()]
        if origin is dict:
            return json.loads(stripped)
    except (KeyError, ValueError):
        name = getattr(annotation, "__name__", str(annotation))
        raise ConfigError(f"{where} is {text!r}; expected {name}") from None
    return text


_WHOLE: dict[int, TypeAdapter[int]] = {
    minimum: TypeAdapter(Annotated[int, Strict(), Field(ge=minimum)]) for minimum in (0, 1)
}


def whole_number(value, name: str, minimum: int = 0, maximum: int | None = None) -> int:
    """``value`` as an ``int`` if it is a whole number >= ``minimum`` (0 or 1) and, where
    given, <= ``maximum`` (a documented limit), else a
    :class:`~intermodal.errors.ConfigError` naming ``name`` (and the limit); ``True``,
    ``2.0`` and ``"3"`` are refused, a NumPy integer is taken."""
    if isinstance(value, np.integer):
        value = int(value)
    try:
        value = _WHOLE[minimum].validate_python(value)
    except ValidationError:
        raise ConfigError(f"{name} {value!r}: expected a whole number >= {minimum}") from None
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name} {value}: at most {maximum} (docs/reliability.md, Limits)")
    return value


@overload
def path_argument(value: object, name: str, *, optional: Literal[False] = False) -> Path: ...
@overload
def path_argument(value: object, name: str, *, optional: bool) -> Path | None: ...
def path_argument(value: object, name: str, *, optional: bool = False) -> Path | None:
    """``value`` as a :class:`~pathlib.Path` if it is a non-empty ``str`` or path (or None
    where ``optional``), else a :class:`~intermodal.errors.ConfigError` naming ``name``."""
    if value is None and optional:
        return None
    if isinstance(value, (str, os.PathLike)) and os.fspath(value):
        return Path(value)
    raise ConfigError(f"{name} {value!r}: expected a path (a str or a pathlib.Path)")


def instance_argument(value, kind: type, name: str, *, optional: bool = False, hint: str = ""):
    """``value`` if it is a ``kind`` (or None where ``optional``), else a
    :class:`~intermodal.errors.ConfigError` naming ``name`` and the type expected."""
    if isinstance(value, kind) or (value is None and optional):
        return value
    expected = f"{'None or ' if optional else ''}a {kind.__name__}{hint}"
    raise ConfigError(f"{name}: expected {expected}; got {type(value).__name__}")


class Options(BaseModel):
    """Base of intermodal's option models: unknown keys rejected, values checked on
    assignment too, errors as one line per problem naming the key."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    @classmethod
    def from_mapping(cls, values: dict, origin: str = "config"):
        """Validate a mapping (keys may use '-' for '_'); errors name ``origin``."""
        if not isinstance(values, dict):
            raise ConfigError(f"{origin}: expected a mapping of options, got {type(values).__name__}")
        try:
            return cls.model_validate({str(k).replace("-", "_"): v for k, v in values.items()})
        except ValidationError as e:
            raise ConfigError(_with_known_keys(validation_message(e, origin), cls)) from None

    @classmethod
    def from_strings(cls, values: dict[str, Any], origin: str = "command line") -> dict:
        """Command-line strings by field name → typed values (not yet validated together);
        a value that is not a string passes as it is."""
        out = {}
        for key, text in values.items():
            name = key.replace("-", "_")
            field = cls.model_fields.get(name)
            if field is None:
                raise ConfigError(_with_known_keys(f"{origin}: {key}: unknown key", cls))
            raw = isinstance(field.json_schema_extra, dict) and field.json_schema_extra.get("cli") == "raw"
            out[name] = (
                text if raw or not isinstance(text, str) else parse_string(text, field.annotation, f"{origin}: {key}")
            )
        return out

    def updated(self, values: dict, origin: str = "config"):
        """A copy with ``values`` applied, all of it validated again."""
        return type(self).from_mapping(
            {**self.to_dict(), **{str(k).replace("-", "_"): v for k, v in values.items()}}, origin
        )

    def to_dict(self) -> dict:
        return self.model_dump(mode="json")


def _with_known_keys(message: str, cls) -> str:
    if "unknown key" in message:
        return f"{message}; known keys are {', '.join(sorted(cls.model_fields))}"
    return message
