"""The datasets a run configuration describes: synthetic or InterHand2.6M, train or held out."""
from __future__ import annotations

import torch

from ..hand_model import load_hand_model
from ..hand_model.joints import SIDES
from .dataset import AugmentConfig, TrainingTransform


def aux_size(cfg: dict) -> int:
    """Side of the segmentation/dense targets: the decoder's finest map (stride 8)."""
    return int(cfg["model"]["img_size"]) // 8


def _synthetic(cfg: dict, split: str, num: int, transform=None, cache: bool = True):
    from .synthetic import GENERATOR_VERSION, SyntheticConfig, SyntheticTwoHands

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
    from .interhand26m import InterHand26M

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
