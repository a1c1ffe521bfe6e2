"""What the DIR network takes and what its numbers mean: input normalisation and units.

* images: RGB uint8 crops, divided by 255, then ImageNet mean/std (the release's input);
* 3D coordinates inside the network and the right-minus-left offset: units of :data:`UNIT`
  = 0.15 m (the release normalises both by 0.15 m).
"""
from __future__ import annotations

import numpy as np
import torch

UNIT = 0.15  # metres: 3D coordinates and the offset inside the network are in units of 0.15 m
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def normalise_image(image: np.ndarray) -> torch.Tensor:
    """(S, S, 3) uint8 RGB -> (3, S, S) float32, /255 then ImageNet mean/std."""
    x = (image.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))


def normalise_batch(images, device=None, dtype=torch.float32) -> torch.Tensor:
    """RGB uint8 images (B, S, S, 3) (array or list) -> ImageNet-normalised (B, 3, S, S) tensor."""
    x = torch.from_numpy(np.ascontiguousarray(np.stack(list(images)) if isinstance(images, (list, tuple)) else images))
    x = x.to(device).permute(0, 3, 1, 2).to(dtype) / 255.0
    mean = torch.as_tensor(IMAGENET_MEAN, device=x.device, dtype=dtype).view(1, 3, 1, 1)
    std = torch.as_tensor(IMAGENET_STD, device=x.device, dtype=dtype).view(1, 3, 1, 1)
    return (x - mean) / std


class ImageNormaliser(torch.nn.Module):
    """RGB uint8 crops as they arrive (B, S, S, 3) -> the network's input (B, 3, S, S), on the device.

    The first step of inference, so that the one host-to-device copy per frame is of the uint8
    crop (S * S * 3 bytes; a quarter of its float32 size) and the cast, the channel order and the
    ImageNet normalisation run on the device, inside a captured CUDA graph when there is one.
    One fused multiply-subtract (``x * scale - shift``, scale and shift buffers): the numbers of
    :func:`normalise_batch` to float rounding (~5e-7).

    Args (forward):
        images: (B, S, S, 3) uint8, on the buffers' device.
    Returns:
        (B, 3, S, S) float32 (a channels-last view: ``permute`` keeps the NHWC bytes).
    """

    def __init__(self) -> None:
        super().__init__()
        std = torch.as_tensor(IMAGENET_STD).view(1, 3, 1, 1)
        self.register_buffer("scale", 1.0 / (255.0 * std), persistent=False)
        self.register_buffer("shift", torch.as_tensor(IMAGENET_MEAN).view(1, 3, 1, 1) / std, persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.permute(0, 3, 1, 2).to(torch.float32) * self.scale - self.shift


def denormalise_image(x: torch.Tensor) -> np.ndarray:
    """Inverse of :func:`normalise_image`: (3, S, S) -> (S, S, 3) uint8."""
    img = x.detach().cpu().numpy().transpose(1, 2, 0) * IMAGENET_STD + IMAGENET_MEAN
    return np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
