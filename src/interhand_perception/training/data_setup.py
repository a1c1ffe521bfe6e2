"""What a training run needs besides the network and the data: ImageNet backbone weights and
the hand models' mesh tensors for the losses (``dir_net.build`` builds the network,
``data.splits`` the datasets)."""
from __future__ import annotations

from pathlib import Path

import torch

from ..dir_net import DIRNet
from ..hand_model.joints import SIDES
from .losses import unique_edges


def read_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from ``.safetensors`` or a ``torch.save`` file, without unpickling code.

    ``.pth``/``.pt``/``.bin`` files are read with ``torch.load(weights_only=True)``; a dict that
    wraps the weights under ``state_dict`` or ``model`` is unwrapped.

    Raises:
        FileNotFoundError: no such file. ValueError: the file holds no name -> tensor mapping.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model.backbone_weights: file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    obj = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(torch.is_tensor(v) for v in obj.values()):
        raise ValueError(f"model.backbone_weights: {path} does not hold a state dict (name -> tensor)")
    return obj


def load_backbone_weights(model: DIRNet, path: str | Path):
    """Fill ``model.backbone`` from a torchvision-format ImageNet ResNet state dict file.

    The encoder's parameter names are torchvision's (``conv1``, ``bn1``, ``layer1.0.conv1``,
    ..., ``downsample.0``), so no renaming is needed; ``fc.*`` is ignored and a leading
    ``module.`` stripped (``dir_net.resnet.load_torchvision_state_dict``).

    Returns:
        The ``LoadReport``.
    Raises:
        ValueError: missing or unexpected keys, or shape mismatches (all of them listed), e.g.
            ResNet-50 weights for a ResNet-18 backbone.
    """
    from ..dir_net.resnet import load_torchvision_state_dict

    state = read_state_dict_file(path)
    try:
        return load_torchvision_state_dict(model.backbone, state, strict=True)
    except ValueError as exc:
        raise ValueError(f"model.backbone_weights {path}: {exc}") from None


def mesh_tensors(hand_models: dict, device: torch.device) -> dict:
    """What the losses need of the hand models, per side: faces and unique edges (long
    tensors), and the models themselves (for the parameter terms)."""
    faces = {s: torch.as_tensor(hand_models[s].faces, dtype=torch.long, device=device) for s in SIDES}
    return {"faces": faces, "edges": {s: unique_edges(f) for s, f in faces.items()}, "hand_models": hand_models}


