"""The errors intermodal raises for what its user can put right: one family under
:class:`IntermodalError`, so that a caller (and the command line) can tell a bad input or
state, which gets a message, from a bug, which keeps its traceback.

Every message names the file, column, option or key at fault and what was expected.
Each class also derives from ``ValueError``, so a caller that catches ``ValueError``
catches them too.
"""

from __future__ import annotations

import functools

from pydantic import ValidationError

__all__ = [
    "IntermodalError",
    "DataError",
    "ConfigError",
    "ScheduleError",
    "ModelError",
    "CheckpointError",
    "RunFolderError",
    "ClusterError",
    "Terminated",
    "validation_message",
    "errors_as",
]


class IntermodalError(ValueError):
    """Base of every error intermodal raises for a bad input or state its user can fix."""


class DataError(IntermodalError):
    """A data file or description does not hold what was expected (or a selector names a
    modality or time step the data set does not have)."""


class ConfigError(IntermodalError):
    """An option, a config file or one of its keys has a value that is not what was expected."""


class ScheduleError(ConfigError):
    """A KL-weight schedule's name, parameters or table is not what was expected."""


class ModelError(IntermodalError):
    """A model does not fit what it is used with (another data set's columns, an
    architecture that does not match the modalities), or is asked for what it cannot do."""


class RunFolderError(IntermodalError):
    """A run folder lacks a file, holds a malformed one (a value of the wrong type
    included), or is in use by another process."""


class CheckpointError(RunFolderError):
    """A checkpoint (a run folder's file) is missing, damaged, cannot be written, or does
    not match what it is loaded for."""


class ClusterError(IntermodalError):
    """A study on a Ray cluster cannot start or a unit of it failed for a reason its
    user can act on (Ray missing, no cluster at the address, storage not shared)."""


class Terminated(Exception):
    """The process was asked to stop (SIGTERM, as a cluster scheduler sends before it kills
    a job); training saved a checkpoint first. Not an IntermodalError: nothing was wrong."""

    def __init__(self, message: str = "", run: object = None):
        super().__init__(message)
        self.run = run


def validation_message(error: ValidationError, origin: str) -> str:
    """One line per problem of a pydantic error, each naming ``origin`` and the key path."""
    lines = []
    for problem in error.errors():
        where = ".".join(str(p) for p in problem["loc"]) or "(top level)"
        kind = problem["type"]
        if kind in ("unexpected_keyword_argument", "extra_forbidden", "no_such_attribute"):
            text = "unknown key"
        elif kind in ("missing", "missing_argument"):
            text = "missing key"
        elif kind in ("value_error", "assertion_error") and "error" in problem.get("ctx", {}):
            text = str(problem["ctx"]["error"])
        else:
            shown = problem.get("input")
            msg = problem["msg"].replace("valid tuple", "list").replace("valid dictionary", "mapping")
            text = f"{msg[0].lower()}{msg[1:]} (got {shown!r})"
        lines.append(f"{origin}: {text}" if not problem["loc"] else f"{origin}: {where}: {text}")
    return "\n".join(lines)


def errors_as(error_type: type[IntermodalError], *, known_keys: bool = False):
    """Class decorator: constructing the class (a pydantic model or dataclass) with a bad
    value, or assigning one to a field of an instance (pydantic's ``validate_assignment``,
    or a frozen model), raises ``error_type`` with :func:`validation_message`'s lines, not
    pydantic's ``ValidationError``; with ``known_keys``, an unknown key's message lists the
    known ones.

    It wraps ``__init__`` and ``__setattr__`` after the class is built, so pydantic's own
    validation paths (``model_validate``, ``TypeAdapter``) are untouched and keep raising
    ValidationError for their callers to word with their own origin."""

    def reworded(cls, e: ValidationError) -> IntermodalError:
        message = validation_message(e, cls.__name__)
        if known_keys and "unknown key" in message:
            fields = getattr(cls, "model_fields", None) or getattr(cls, "__dataclass_fields__", {})
            message += f"; known keys are {', '.join(sorted(fields))}"
        return error_type(message)

    def decorate(cls):
        init, setattr_ = cls.__init__, cls.__setattr__

        @functools.wraps(init)
        def __init__(self, *args, **kwargs):
            try:
                init(self, *args, **kwargs)
            except ValidationError as e:
                raise reworded(type(self), e) from None

        @functools.wraps(setattr_)
        def __setattr__(self, name, value):
            try:
                setattr_(self, name, value)
            except ValidationError as e:
                raise reworded(type(self), e) from None

        cls.__init__ = __init__
        cls.__setattr__ = __setattr__
        return cls

    return decorate
