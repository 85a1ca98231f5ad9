"""A stand-in for torchvision, for the tests only: just enough of it for MultiVae to import.

Why it exists: MultiVae (the peer library the tests compare against) imports torchvision when
its packages load, but uses it only for image utilities (image data sets, transforms, image
grids) that the tests never touch. The registry's torchvision wheels are CUDA builds that cannot
load beside this machine's CPU torch ("operator torchvision::nms does not exist"), so
tests/conftest.py puts this folder on sys.path only when the real torchvision cannot be imported.

It holds only the names MultiVae 1.0.3 imports at import time (torchvision.datasets: CelebA,
MNIST, SVHN, utils.download_and_extract_archive; torchvision.transforms: ToTensor;
torchvision.utils: make_grid, save_image). Each is a placeholder that raises
TorchvisionShimError when it is actually used (called, or for ToTensor applied), so nothing can
quietly depend on it. Never install or import it outside the tests.
"""

from . import datasets, transforms, utils
from ._placeholder import TorchvisionShimError

__version__ = "0.0.0+intermodal.shim"

__all__ = ["TorchvisionShimError", "datasets", "transforms", "utils"]
