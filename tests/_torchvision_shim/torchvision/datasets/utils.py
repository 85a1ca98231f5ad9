"""torchvision.datasets.utils in the tests' stand-in: a placeholder that raises when called."""

from .._placeholder import missing_name, placeholder_function

download_and_extract_archive = placeholder_function("datasets.utils.download_and_extract_archive")

__all__ = ["download_and_extract_archive"]


def __getattr__(name: str):
    missing_name("datasets.utils", name)
