"""Synthetic MANO-format hand models for the release-variant tests (MANO itself is licence-gated).

The arrays have the official shapes (778 vertices, 16 skinning joints, 45 x 45 PCA basis), so
the release's fingertip vertex ids (745, 317, 444/445, 556, 673) exist. As in the official
files, the left model's shape directions carry the x-sign bug: in the "file" arrays their x
components equal the right model's; :func:`hand_model_data` applies the loader's fix.
"""
from __future__ import annotations

import numpy as np

from interhand_perception.hand_model.joints import MANO_TIP_VERTEX_IDS, SKIN_PARENTS, SIDES
from interhand_perception.hand_model.model_data import HandModelData

NUM_VERTS = 778
ROOT_MARKER = 4294967295  # parent of the root in the official kintree tables


def synthetic_mano_arrays(seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """``{side: arrays}`` with the keys and shapes of an official MANO pickle (float64)."""
    rng = np.random.default_rng(seed)
    shape_x = rng.normal(scale=0.01, size=(NUM_VERTS, 10))
    out = {}
    for side in SIDES:
        reg = rng.random((16, NUM_VERTS)) * (rng.random((16, NUM_VERTS)) < 0.05)
        reg[np.arange(16), rng.choice(NUM_VERTS, 16, replace=False)] += 1.0
        shapedirs = rng.normal(scale=0.01, size=(NUM_VERTS, 3, 10))
        shapedirs[:, 0, :] = shape_x  # x components equal in both files: the left file's known bug
        out[side] = {
            "v_template": rng.normal(scale=0.04, size=(NUM_VERTS, 3)),
            "f": rng.integers(0, NUM_VERTS, size=(1538, 3)).astype(np.uint32),
            "shapedirs": shapedirs,
            "posedirs": rng.normal(scale=0.005, size=(NUM_VERTS, 3, 135)),
            "J_regressor": reg / reg.sum(1, keepdims=True),
            "weights": rng.dirichlet(np.full(16, 0.3), size=NUM_VERTS),
            "kintree_table": np.array([[ROOT_MARKER, *SKIN_PARENTS[1:]], list(range(16))], dtype=np.int64),
            "hands_components": rng.normal(scale=0.3, size=(45, 45)),
            "hands_mean": rng.normal(scale=0.2, size=45),
        }
    return out


def hand_model_data(arrays: dict[str, np.ndarray], side: str) -> HandModelData:
    """The loader's view of one synthetic file (left shape-direction fix applied)."""
    shapedirs = np.array(arrays["shapedirs"], dtype=np.float64)
    if side == "left":
        shapedirs[:, 0, :] *= -1.0
    return HandModelData(
        v_template=arrays["v_template"], faces=arrays["f"].astype(np.int64), shapedirs=shapedirs,
        posedirs=arrays["posedirs"], J_regressor=arrays["J_regressor"], weights=arrays["weights"],
        parents=np.array(SKIN_PARENTS, dtype=np.int64), hands_components=arrays["hands_components"],
        hands_mean=arrays["hands_mean"], tip_vertex_ids=np.array(MANO_TIP_VERTEX_IDS, dtype=np.int64),
        side=side, name="mano",
    ).validate()


def synthetic_hand_models(seed: int = 0) -> dict:
    """``{side: HandModel}`` (45 PCA components, mean pose added) from :func:`synthetic_mano_arrays`."""
    from interhand_perception.hand_model.layer import HandModel

    arrays = synthetic_mano_arrays(seed)
    return {s: HandModel(hand_model_data(arrays[s], s), num_pca_comps=45, flat_hand_mean=False) for s in SIDES}


def write_synthetic_mano_dir(folder, seed: int = 0):
    """Write MANO_RIGHT.pkl / MANO_LEFT.pkl in the official pickle format; returns the folder."""
    from pathlib import Path

    from test_mano_io import write_mano_pickle

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for side, arrays in synthetic_mano_arrays(seed).items():
        write_mano_pickle(folder / f"MANO_{side.upper()}.pkl", arrays, sparse="scipy")
    return folder
