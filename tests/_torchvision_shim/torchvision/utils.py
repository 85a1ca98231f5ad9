"""torchvision.utils in the tests' stand-in: placeholders that raise when called."""

from ._placeholder import missing_name, placeholder_function

make_grid = placeholder_function("utils.make_grid")
save_image = placeholder_function("utils.save_image")

__all__ = ["make_grid", "save_image"]


def __getattr__(name: str):
    missing_name("utils", name)
