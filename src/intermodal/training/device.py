"""Where a run computes and in which arithmetic: the device checked, TF32 off, and the record
of both in the run folder.

A run computes in full float32 (or float64) on every device: TensorFloat-32, which an
NVIDIA GPU may use for float32 matrix products (10 bits of mantissa instead of 23), is
turned off for the run and restored after (:func:`exact_float32`). The environment variable
``TORCH_ALLOW_TF32_CUBLAS_OVERRIDE=1``, set in some GPU containers, turns TF32 on in cuBLAS
whatever torch is told; a run on a GPU with it set says so (a warning on the
``intermodal`` logger) and records it. :func:`environment` is what a run records of the
machine for each stretch of training (``environment.json``, written by
:mod:`intermodal.training.runfolder`); docs/performance.md says which numbers agree across
devices and how closely.
"""

from __future__ import annotations

import logging
import os
import platform
import time
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from ..errors import ConfigError

__all__ = ["exact_float32", "environment", "check_device", "TF32_OVERRIDE"]

logger = logging.getLogger("intermodal")

TF32_OVERRIDE = "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE"


@contextmanager
def exact_float32() -> Iterator[None]:
    """Inside: float32 matrix products in full float32 (torch's precision "highest", no
    TF32) and convolutions without TF32; torch's settings are restored on the way out."""
    matmul = torch.get_float32_matmul_precision()
    cudnn = torch.backends.cudnn.allow_tf32
    torch.set_float32_matmul_precision("highest")
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(matmul)
        torch.backends.cudnn.allow_tf32 = cudnn


def tf32_overridden() -> bool:
    """Whether the environment forces TF32 on in cuBLAS (``TORCH_ALLOW_TF32_CUBLAS_OVERRIDE``
    set to anything but 0 or nothing)."""
    return os.environ.get(TF32_OVERRIDE, "0").strip() not in ("", "0")


def check_device(device: str, dtype: torch.dtype, *, option: str = "--device") -> torch.device:
    """``device`` as torch's, checked against what this machine has (a
    :class:`~intermodal.errors.ConfigError` naming ``option`` otherwise); warns (on the
    ``intermodal`` logger) where the run's numbers or speed will surprise: float64 on a GPU,
    TF32 forced on by the environment."""
    where = torch.device(device)
    if where.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"{option} {device}: no CUDA device is available to torch on this machine; use cpu")
        count = torch.cuda.device_count()
        if where.index is not None and where.index >= count:
            raise ConfigError(
                f"{option} {device}: this machine has {count} CUDA device{'s' * (count != 1)} "
                f"(cuda:0{f' to cuda:{count - 1}' if count > 1 else ''})"
            )
        if dtype == torch.float64:
            logger.warning(
                "%s %s with --dtype float64: most GPUs compute float64 many times slower than float32 (a consumer "
                "card 32 to 64 times; a data-centre card such as the A100 or H100 about 2 times); float32 gives the "
                "same findings (docs/method.md)",
                option,
                device,
            )
        if tf32_overridden() and dtype == torch.float32:
            logger.warning(
                "%s=%s is set: cuBLAS computes float32 matrix products in TF32 whatever intermodal asks, so this "
                "run's numbers differ from a CPU run's by more than rounding; unset it for full float32",
                TF32_OVERRIDE,
                os.environ[TF32_OVERRIDE],
            )
    return where


def environment(device: torch.device, dtype: torch.dtype, epoch: int) -> dict:
    """What a stretch of training that starts at ``epoch`` records of where it ran: the
    device (and the GPU's name), torch, Python, the float32 matrix-product precision in
    force and whether TF32 was forced on by the environment."""
    record = {
        "from_epoch": int(epoch),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "device": str(device),
        "dtype": str(dtype).removeprefix("torch."),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "tf32": False,
    }
    if device.type == "cuda":
        record["gpu"] = torch.cuda.get_device_name(device)
        record["cuda"] = torch.version.cuda
        overridden = tf32_overridden()
        record[TF32_OVERRIDE] = os.environ.get(TF32_OVERRIDE)
        record["tf32"] = overridden and dtype == torch.float32
    return record
