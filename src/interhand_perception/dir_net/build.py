"""Build the DIR network a run configuration describes, on a device (ROS-free).

Used by training and by ``network.HandReconstructor`` alike (the device name is resolved by
``devices.resolve_device``): a checkpoint embeds its run
configuration, and its ``model`` section (without :data:`RUN_MODEL_KEYS`) is ``DIRConfig``.
"""
from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from ..hand_model import load_hand_model
from ..hand_model.joints import SIDES
from .config import DIRConfig
from .model import DIRNet
from .release_model import ReleaseDIRNet

#: Keys of the ``model`` section that configure a run, not the network (not DIRConfig fields).
RUN_MODEL_KEYS = ("backbone_weights",)


def network_section(model_cfg: dict) -> dict:
    """The ``model`` section without :data:`RUN_MODEL_KEYS`: the arguments of ``DIRConfig``."""
    return {k: v for k, v in model_cfg.items() if k not in RUN_MODEL_KEYS}


def build_dir_net(config: DIRConfig | Mapping | None = None,
                  hand_models: Mapping[str, nn.Module] | None = None) -> DIRNet:
    """Build a DIRNet (a ``ReleaseDIRNet`` for ``variant: release``); ``hand_models`` default to
    the built-in hand model of each side.

    Args:
        config: a :class:`DIRConfig`, a mapping for :meth:`DIRConfig.from_dict`, or None.
        hand_models: {"left", "right"} -> HandModel; None loads ``hand_model.load_hand_model``.
    """
    if not isinstance(config, DIRConfig):
        config = DIRConfig.from_dict(config)
    if hand_models is None:
        hand_models = {s: load_hand_model(s) for s in SIDES}
    if config.variant == "release":
        return ReleaseDIRNet(config, hand_models)
    return DIRNet(config, hand_models)


def build_hand_models(cfg: dict) -> dict:
    """``{side: HandModel}`` for the network: PCA pose, mean pose added (MANO convention)."""
    mano_dir = cfg.get("hand_model", {}).get("mano_dir")
    return {s: load_hand_model(s, mano_dir=mano_dir) for s in SIDES}


def build_model(cfg: dict, device: torch.device) -> tuple[DIRNet, dict]:
    """The DIR network (with its hand models as non-persistent submodules) on ``device``."""
    hand_models = build_hand_models(cfg)
    model = build_dir_net(DIRConfig.from_dict(network_section(cfg["model"])), hand_models).to(device)
    return model, model.hand_models
