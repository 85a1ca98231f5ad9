"""The placeholders of the torchvision stand-in (see the package docstring)."""

from __future__ import annotations

_WHY = (
    "is a placeholder of the tests' torchvision stand-in (tests/_torchvision_shim): the real "
    "torchvision is not importable here, and MultiVae's image utilities are not available"
)


class TorchvisionShimError(RuntimeError):
    """Raised when code uses a placeholder of the torchvision stand-in."""


def placeholder_function(qualname: str):
    """A function that raises TorchvisionShimError when called."""

    def function(*args, **kwargs):
        raise TorchvisionShimError(f"torchvision.{qualname} {_WHY}")

    function.__name__ = qualname.rpartition(".")[2]
    function.__qualname__ = function.__name__
    return function


def placeholder_class(qualname: str) -> type:
    """A class that raises TorchvisionShimError when instantiated."""

    def __init__(self, *args, **kwargs):
        raise TorchvisionShimError(f"torchvision.{qualname} {_WHY}")

    name = qualname.rpartition(".")[2]
    return type(name, (), {"__init__": __init__, "__module__": f"torchvision.{qualname.rpartition('.')[0]}"})


def missing_name(module: str, name: str):
    """For a module-level __getattr__: a clear AttributeError for any name the stand-in lacks."""
    if name.startswith("__"):
        raise AttributeError(f"module 'torchvision.{module}' has no attribute {name!r}")
    raise AttributeError(
        f"torchvision.{module}.{name} is not in the tests' torchvision stand-in (tests/_torchvision_shim), "
        "which holds only the names MultiVae imports at import time: the real torchvision is not importable here"
    )
