"""Hand models: MANO (user-supplied, licence-gated) or the built-in procedural hand.

``load_hand_model("right")`` gives a ready :class:`HandModel`; pass ``mano_dir`` (the folder
holding ``MANO_RIGHT.pkl``/``MANO_LEFT.pkl`` or its parent with a ``models/`` subfolder) to use
the official MANO model, omit it for the built-in one.
"""
from __future__ import annotations

from pathlib import Path
from typing import Union

from .joints import JOINT_NAMES, SIDES
from .layer import HandModel, HandOutput, root_relative
from .model_data import HandModelData

__all__ = [
    "HandModel", "HandModelData", "HandOutput", "JOINT_NAMES", "load_hand_model",
    "load_hand_model_data", "root_relative",
]


def _check_side(side: str) -> str:
    if side not in SIDES:
        raise ValueError(f"side must be one of {SIDES}, got {side!r}")
    return side


def load_hand_model_data(side: str, mano_dir: Union[str, Path, None] = None) -> HandModelData:
    """Arrays of one hand model.

    Args:
        side: "left" or "right".
        mano_dir: folder with the official MANO pickles; None selects the built-in model.

    Returns:
        A validated HandModelData ("mano" or "builtin").
    """
    _check_side(side)
    if mano_dir is None:
        from .builtin import load_builtin_data  # lazy: keeps this package importable on its own

        return load_builtin_data(side).validate()
    from .mano_io import find_mano_file, load_mano_file

    return load_mano_file(find_mano_file(mano_dir, side), side=side)


def load_hand_model(side: str, mano_dir: Union[str, Path, None] = None, num_pca_comps: int = 45,
                    flat_hand_mean: bool = False) -> HandModel:
    """A :class:`HandModel` for one side (see :func:`load_hand_model_data`)."""
    return HandModel(load_hand_model_data(side, mano_dir), num_pca_comps=num_pca_comps,
                     flat_hand_mean=flat_hand_mean)
