"""The one host-to-device copy per frame: uint8 crops, from page-locked memory on CUDA.

The pipeline crops on the host (``dir_net.crop.crop_image``: an affine warp whose cost follows
the crop, S x S, not the frame) and hands the network uint8 crops. What crosses to the GPU per
frame is those S * S * 3 bytes, once (196 kB at 256 px, against 922 kB for a 640 x 480 frame
and 6.2 MB for 1920 x 1080, and a quarter of the float32 input's size); the cast and the
ImageNet normalisation run on the device (``dir_net.inputs.ImageNormaliser``), inside the CUDA
graph when there is one.

On CUDA the bytes are first written into a page-locked (pinned) host buffer, one per batch
shape, and copied from there asynchronously: a copy from pageable memory is staged by the driver
and blocks the host. Before a buffer is written again, the previous copy out of it is waited for
(a CUDA event), so a caller that never synchronises cannot corrupt a copy in flight. On the CPU
the crops are used where they lie: no copy at all.
"""
from __future__ import annotations

import numpy as np
import torch


class CropUpload:
    """Put uint8 crops on the network's device with at most one copy.

    Args:
        device: the network's device.
    Call: ``(crops (B, S, S, 3) uint8 array, out=None)`` -> (B, S, S, 3) uint8 tensor on the
        device: ``out`` (e.g. a CUDA graph's static input) filled with the crops, or a new
        tensor (on the CPU: the array's own memory, no copy).
    """

    def __init__(self, device: torch.device) -> None:
        self.device = torch.device(device)
        self.pinned: dict[tuple, torch.Tensor] = {}
        self.copy_done = None  # CUDA event recorded after the last copy out of a pinned buffer

    def __call__(self, crops: np.ndarray, out: torch.Tensor | None = None) -> torch.Tensor:
        crops = np.ascontiguousarray(crops)
        if self.device.type != "cuda":
            host = torch.from_numpy(crops)
            return host if out is None else out.copy_(host)
        staging = self.staging(crops.shape)
        staging.numpy()[...] = crops
        dst = out if out is not None else torch.empty(crops.shape, dtype=torch.uint8, device=self.device)
        dst.copy_(staging, non_blocking=True)
        self.copy_done.record()
        return dst

    def staging(self, shape: tuple) -> torch.Tensor:
        """The pinned host buffer of ``shape``, free to write (the last copy out of it has finished)."""
        if self.copy_done is None:
            self.copy_done = torch.cuda.Event()
        else:
            self.copy_done.synchronize()
        buf = self.pinned.get(tuple(shape))
        if buf is None:
            buf = self.pinned[tuple(shape)] = torch.empty(shape, dtype=torch.uint8, pin_memory=True)
        return buf


__all__ = ["CropUpload"]
