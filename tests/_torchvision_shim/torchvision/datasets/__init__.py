"""torchvision.datasets in the tests' stand-in: placeholders that raise when used."""

from .._placeholder import missing_name, placeholder_class
from . import utils

CelebA = placeholder_class("datasets.CelebA")
MNIST = placeholder_class("datasets.MNIST")
SVHN = placeholder_class("datasets.SVHN")

__all__ = ["MNIST", "SVHN", "CelebA", "utils"]


def __getattr__(name: str):
    missing_name("datasets", name)
