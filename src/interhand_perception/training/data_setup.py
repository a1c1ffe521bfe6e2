"""Build the network, its hand models and the datasets a run configuration describes."""
from __future__ import annotations

from pathlib import Path

import torch

from ..data.dataset import AugmentConfig, TrainingTransform
from ..dir_net import DIRConfig, DIRNet, build_dir_net
from ..hand_model import load_hand_model
from ..hand_model.joints import SIDES
from .config import network_section
from .losses import unique_edges


def build_hand_models(cfg: dict) -> dict:
    """``{side: HandModel}`` for the network: PCA pose, mean pose added (MANO convention)."""
    mano_dir = cfg.get("hand_model", {}).get("mano_dir")
    return {s: load_hand_model(s, mano_dir=mano_dir) for s in SIDES}


def build_model(cfg: dict, device: torch.device) -> tuple[DIRNet, dict]:
    """The DIR network (with its hand models as non-persistent submodules) on ``device``."""
    hand_models = build_hand_models(cfg)
    model = build_dir_net(DIRConfig.from_dict(network_section(cfg["model"])), hand_models).to(device)
    return model, model.hand_models


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


def aux_size(cfg: dict) -> int:
    """Side of the segmentation/dense targets: the decoder's finest map (stride 8)."""
    return int(cfg["model"]["img_size"]) // 8


def _synthetic(cfg: dict, split: str, num: int, transform=None, cache: bool = True):
    from ..data.synthetic import GENERATOR_VERSION, SyntheticConfig, SyntheticTwoHands

    d = cfg["data"]
    syn_cfg = SyntheticConfig(img_size=int(cfg["model"]["img_size"]), seed=int(d["seed"]),
                              version=int(d.get("generator_version", GENERATOR_VERSION)))
    cache_dir = d.get("cache_dir") if cache else None
    return SyntheticTwoHands(num, split=split, config=syn_cfg, cache_dir=cache_dir, transform=transform)


class MappedDataset(torch.utils.data.Dataset):
    """``fn(base[i])`` for every item of ``base``."""

    def __init__(self, base, fn):
        self.base, self.fn = base, fn

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int):
        return self.fn(self.base[i])


def _interhand(cfg: dict, split: str, transform=None, limit: int | None = None):
    from ..data.interhand26m import InterHand26M

    d = cfg["data"]
    mano_dir = cfg["hand_model"].get("mano_dir")
    fits_hand_models = None
    if d.get("fits_model", "mano") == "builtin":
        if mano_dir is not None:
            raise ValueError("config 'data.fits_model' is 'builtin' (fits made with the built-in hand model) "
                             "but 'hand_model.mano_dir' is set: unset one of them")
        # fresh CPU layers (not the network's, which may sit on a GPU); flat_hand_mean=False, the
        # NeuralAnnot convention the loader reads the fits in
        fits_hand_models = {s: load_hand_model(s) for s in SIDES}
    ds = InterHand26M(d["root"], split=split, img_size=int(cfg["model"]["img_size"]), mano_dir=mano_dir,
                      hand_models=fits_hand_models, max_samples=limit or d.get("max_samples"))
    return MappedDataset(ds, transform) if transform is not None else ds


def build_train_set(cfg: dict, hand_models: dict | None = None):
    """Training dataset yielding tensors (``TrainingTransform``; augmented when data.augment)."""
    d = cfg["data"]
    aug = AugmentConfig(rotation_deg=float(d["augment_rotation_deg"])) if d.get("augment", True) else None
    transform = TrainingTransform(int(cfg["model"]["img_size"]), aux_size(cfg), aug)
    if d["kind"] == "synthetic":
        return _synthetic(cfg, "train", int(d["train_samples"]), transform)
    return _interhand(cfg, "train", transform)


def build_test_set(cfg: dict, hand_models: dict | None = None, limit: int | None = None, split: str = "test"):
    """Held-out dataset of raw sample dicts (no augmentation) for evaluation."""
    d = cfg["data"]
    if d["kind"] == "synthetic":
        n = int(d["test_samples"]) if limit is None else int(limit)
        return _synthetic(cfg, split, n)  # pre-rendered test shards (gen-data --split test) are used when present
    return _interhand(cfg, split, limit=limit)
