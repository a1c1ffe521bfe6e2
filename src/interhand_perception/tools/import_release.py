"""``interhand import-release``: the DIR authors' released checkpoint -> a checkpoint of the
release variant that every part of the project loads like any other.

The key mapping and the checks live in ``dir_net.release_import`` (ROS- and training-free);
this module adds what a checkpoint embeds: a full run configuration (``training.config``).
"""
from __future__ import annotations

from pathlib import Path

from ..dir_net.build import network_section
from ..dir_net.checkpoint import save_checkpoint
from ..dir_net.config import DIRConfig
from ..dir_net.release_import import ConversionReport, check_aux, convert_state_dict, read_release_state_dict
from ..dir_net.release_model import ReleaseDIRNet
from ..hand_model import load_hand_model_data
from ..hand_model.joints import SIDES
from ..hand_model.layer import HandModel
from ..training.config import load_run_config


def release_run_config(mano_dir: str | None) -> dict:
    """The run configuration embedded in a converted checkpoint (release network, MANO)."""
    overrides = {"model": {"variant": "release", "backbone": "resnet50", "img_size": 256, "num_stages": 2},
                 "hand_model": {"mano_dir": mano_dir}}
    return load_run_config(None, overrides=overrides)


def import_release_checkpoint(ckpt: str | Path, mano_dir: str | Path, out: str | Path, *,
                              allow_mano_mismatch: bool = False) -> tuple[Path, ConversionReport]:
    """Convert a release checkpoint into a project checkpoint of the release variant.

    Args:
        ckpt: the release's ``.pth`` (``{"net": ...}`` or a bare state dict).
        mano_dir: folder with ``MANO_RIGHT.pkl``/``MANO_LEFT.pkl`` (used to check the
            checkpoint's MANO buffers and recorded as the network's hand models).
        out: the ``.safetensors`` file to write (config and hand-model fingerprints embedded).
        allow_mano_mismatch: write even when the checkpoint's MANO arrays differ from the files.
    Returns:
        (path written, report).
    Raises:
        ValueError: unknown, missing or mis-shaped keys (all listed), or MANO disagreement.
    """
    release = read_release_state_dict(ckpt)
    data = {s: load_hand_model_data(s, mano_dir) for s in SIDES}
    cfg = release_run_config(str(mano_dir))
    hands = {s: HandModel(data[s], num_pca_comps=45, flat_hand_mean=False) for s in SIDES}
    model = ReleaseDIRNet(DIRConfig.from_dict(network_section(cfg["model"])), hands)
    state, report = convert_state_dict(release, {k: tuple(v.shape) for k, v in model.state_dict().items()})
    if not report.ok:
        raise ValueError(f"{ckpt} does not match the release variant:\n{report.problems()}")
    bad = check_aux(release, report, data)
    if bad and not allow_mano_mismatch:
        raise ValueError(f"{ckpt} disagrees with the MANO files in {mano_dir} "
                         "(pass allow_mano_mismatch / --allow-mano-mismatch to convert anyway):\n  "
                         + "\n  ".join(bad))
    model.load_state_dict(state, strict=True)
    extra = {"imported_from": str(Path(ckpt).name), "dropped_keys": report.dropped,
             "mano_buffers_checked": len(report.mano), "mano_mismatch": bad}
    return save_checkpoint(out, model, cfg, hand_models=hands, extra=extra), report
