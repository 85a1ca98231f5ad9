"""torchvision.transforms in the tests' stand-in.

ToTensor is built when MultiVae loads (a default argument, ``transform=ToTensor()``), so here it
can be instantiated; applying it raises TorchvisionShimError.
"""

from ._placeholder import TorchvisionShimError, missing_name


class ToTensor:
    """Placeholder: can be built (MultiVae does so at import time), raises when applied."""

    def __call__(self, pic):
        raise TorchvisionShimError(
            "torchvision.transforms.ToTensor is a placeholder of the tests' torchvision stand-in "
            "(tests/_torchvision_shim): the real torchvision is not importable here"
        )

    def __repr__(self) -> str:
        return "ToTensor(placeholder)"


__all__ = ["ToTensor"]


def __getattr__(name: str):
    missing_name("transforms", name)
