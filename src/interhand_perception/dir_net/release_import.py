"""Convert a checkpoint of the authors' DIR release into this project's release variant.

The release's ``train.py`` saves ``{"net": state_dict, "optimizer", "schedule", "last_epoch"}``
with ``torch.save``. :func:`read_release_state_dict` reads it with
``torch.load(weights_only=True)`` (no pickled code runs; a file that needs more is refused),
unwraps ``"net"`` and strips DataParallel ``module.`` prefixes.

Key mapping
-----------
:data:`KEY_RULES` is the whole table, first matching rule wins; ``{s}`` is ``left``/``right``,
``{k}`` the stage (release ``projecter_4``/``*_layer4`` = stage 0 at stride 16,
``projecter_3``/``*_layer3`` = stage 1 at stride 8), ``{n}`` a layer index, ``*`` the rest of the
key (parameter or BN buffer name), kept unchanged.

==============================================================  =====================================
release key                                                     release variant key
==============================================================  =====================================
``backbone.*`` (not ``fc``)                                     ``backbone.*``
``init_regressor.attention_{s}.{n}.*``                          ``initial.attention.{s}.net.{n}.*``
``init_regressor.mano_{s}.*``                                   ``initial.regress.{s}.*``
``init_regressor.offset.*``                                     ``initial.offset.*``
``decoder.{skip,fusion,enhance}_layer{4,3}.bn{i}.*``            ``stages.{k}.{skip,fuse,enhance}.norm{i}.*``
``decoder.{..}_layer{4,3}.conv{i}.conv.*``                      ``stages.{k}.{..}.conv{i}.*``
``decoder.{..}_layer{4,3}.skip_layer.conv.*``                   ``stages.{k}.{..}.skip.*``
``decoder.projecter_{4,3}.img2joint_{s}.filters.{n}.*``         ``stages.{k}.joints.visual.{s}.{n}.*``
``decoder.projecter_{4,3}.pos_emb_{s}.{n}.*``                   ``stages.{k}.joints.local_coord.{s}.{n}.*``
``decoder.projecter_{4,3}.global_pos_emb.{n}.*``                ``stages.{k}.joints.global_coord.{n}.*``
``decoder.projecter_{4,3}.gcn_{s}.gconv_layers.{n}.gconv.W``    ``stages.{k}.joints.gcn.{s}.layers.{n}.conv.weight``
``... .gconv.e_0`` / ``.e_1`` / ``.bias``                       ``... .conv.self_logits`` / ``nbr_logits`` / ``bias``
``decoder.projecter_{4,3}.gcn_{s}.gconv_layers.{n}.bn.*``       ``stages.{k}.joints.gcn.{s}.layers.{n}.norm.*``
``decoder.projecter_{4,3}.interaction.spatial_pos_embed``       ``stages.{k}.joints.transformer.pos_embed``
``... .interaction.STEblocks.{n}.{norm1,norm2,attn.qkv,attn.proj}.*``  ``... .transformer.blocks.{n}.<same>.*``
``... .interaction.STEblocks.{n}.mlp.fc1.*`` / ``fc2``          ``... .transformer.blocks.{n}.mlp.0.*`` / ``mlp.2``
``... .interaction.spatial_norm.*``                             ``... .transformer.block_norm.*``
``... .interaction.head.0.*`` / ``head.1.*``                    ``... .transformer.head_norm.*`` / ``head.*``
``decoder.projecter_{4,3}.proj_feat_emb.{n}.*``                 ``stages.{k}.joints.plane_feat.{n}.*``
``decoder.projecter_{4,3}.fusion.{n}.*``                        ``stages.{k}.joints.fusion.{n}.*``
``decoder.projecter_{4,3}.regressor.mano_{s}.*``                ``stages.{k}.joints.update.hand.{s}.*``
``decoder.projecter_{4,3}.regressor.offset.*``                  ``stages.{k}.joints.update.offset.*``
``decoder.conv_final.{n}.*`` / ``seg`` / ``dense``              ``heads.final.{n}.*`` / ``heads.seg`` / ``heads.dense``
==============================================================  =====================================

Keys that carry no network weight are *accounted for*, never silently dropped:

* ``*.mano_layer_{s}.th_*`` (six copies of each hand's MANO arrays): not stored (MANO is
  licence-gated; the converted file references the user's MANO files instead). Each is compared
  with the MANO file given with ``--mano-dir`` (left shape-direction fix applied) and a
  mismatch is an error.
* ``decoder.projecter_{4,3}.img_gird``: the cell-centre grid, recomputed and compared.
* ``backbone.fc.*`` (ImageNet classifier, unused by the release's forward) and
  ``seg_loss.weight`` (the loss's class weights): dropped, listed in the report.

Any other key is *unknown* and any variant key not produced is *missing*: both raise with
the full list, as do shape mismatches. ``release_manifest.json`` (next to this file) lists
every key and shape of the release's ``net`` state dict; see its ``derivation`` field.
"""
from __future__ import annotations

import json
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np
import torch


MANIFEST_PATH = Path(__file__).with_name("release_manifest.json")

#: Release stage suffix -> variant stage index.
STAGE_OF = {"4": "0", "3": "1"}
#: Release decoder residual names -> variant names.
TRUNK_OF = {"skip": "skip", "fusion": "fuse", "enhance": "enhance"}
#: Sub-keys of the release's pre-activation residual -> variant names.
RESIDUAL_PARTS = {"bn1": "norm1", "bn2": "norm2", "bn3": "norm3", "conv1.conv": "conv1",
                  "conv2.conv": "conv2", "conv3.conv": "conv3", "skip_layer.conv": "skip"}
#: Sub-keys of the release's joint interaction (after ``projecter_K.``) -> variant (after ``joints.``).
JOINT_PARTS = (
    (r"img2joint_(left|right)\.filters\.(.+)", r"visual.\1.\2"),
    (r"pos_emb_(left|right)\.(.+)", r"local_coord.\1.\2"),
    (r"global_pos_emb\.(.+)", r"global_coord.\1"),
    (r"gcn_(left|right)\.gconv_layers\.(\d+)\.gconv\.W", r"gcn.\1.layers.\2.conv.weight"),
    (r"gcn_(left|right)\.gconv_layers\.(\d+)\.gconv\.e_0", r"gcn.\1.layers.\2.conv.self_logits"),
    (r"gcn_(left|right)\.gconv_layers\.(\d+)\.gconv\.e_1", r"gcn.\1.layers.\2.conv.nbr_logits"),
    (r"gcn_(left|right)\.gconv_layers\.(\d+)\.gconv\.bias", r"gcn.\1.layers.\2.conv.bias"),
    (r"gcn_(left|right)\.gconv_layers\.(\d+)\.bn\.(.+)", r"gcn.\1.layers.\2.norm.\3"),
    (r"interaction\.spatial_pos_embed", r"transformer.pos_embed"),
    (r"interaction\.STEblocks\.(\d+)\.mlp\.fc1\.(.+)", r"transformer.blocks.\1.mlp.0.\2"),
    (r"interaction\.STEblocks\.(\d+)\.mlp\.fc2\.(.+)", r"transformer.blocks.\1.mlp.2.\2"),
    (r"interaction\.STEblocks\.(\d+)\.(norm1|norm2|attn\.qkv|attn\.proj)\.(.+)", r"transformer.blocks.\1.\2.\3"),
    (r"interaction\.spatial_norm\.(.+)", r"transformer.block_norm.\1"),
    (r"interaction\.head\.0\.(.+)", r"transformer.head_norm.\1"),
    (r"interaction\.head\.1\.(.+)", r"transformer.head.\1"),
    (r"proj_feat_emb\.(.+)", r"plane_feat.\1"),
    (r"fusion\.(.+)", r"fusion.\1"),
    (r"regressor\.mano_(left|right)\.(.+)", r"update.hand.\1.\2"),
    (r"regressor\.offset\.(.+)", r"update.offset.\1"),
)
#: Whole-key rules of the rest of the network: (release regex, variant template).
TOP_PARTS = (
    (r"backbone\.(?!fc\.)(.+)", r"backbone.\1"),
    (r"init_regressor\.attention_(left|right)\.(\d+)\.(.+)", r"initial.attention.\1.net.\2.\3"),
    (r"init_regressor\.mano_(left|right)\.(.+)", r"initial.regress.\1.\2"),
    (r"init_regressor\.offset\.(.+)", r"initial.offset.\1"),
    (r"decoder\.conv_final\.(.+)", r"heads.final.\1"),
    (r"decoder\.(seg|dense)\.(.+)", r"heads.\1.\2"),
)
MANO_KEY = re.compile(r"(?:init_regressor|decoder\.projecter_[34]\.regressor)\.mano_layer_(left|right)\.(th_\w+)")
GRID_KEY = re.compile(r"decoder\.projecter_([34])\.img_gird")
DROPPED_KEY = re.compile(r"backbone\.fc\.(weight|bias)|seg_loss\.weight")
TRUNK_KEY = re.compile(r"decoder\.(skip|fusion|enhance)_layer([34])\.(.+?)\.(weight|bias|running_mean|running_var|num_batches_tracked)")
JOINT_KEY = re.compile(r"decoder\.projecter_([34])\.(.+)")


def map_key(key: str) -> str | None:
    """Variant key of a release *network* key, or None when no rule matches (see the table)."""
    m = TRUNK_KEY.fullmatch(key)
    if m and m.group(3) in RESIDUAL_PARTS:
        trunk, stage, part, leaf = m.groups()
        return f"stages.{STAGE_OF[stage]}.{TRUNK_OF[trunk]}.{RESIDUAL_PARTS[part]}.{leaf}"
    m = JOINT_KEY.fullmatch(key)
    if m:
        for pattern, template in JOINT_PARTS:
            sub = re.fullmatch(pattern, m.group(2))
            if sub:
                return f"stages.{STAGE_OF[m.group(1)]}.joints." + sub.expand(template)
        return None
    for pattern, template in TOP_PARTS:
        sub = re.fullmatch(pattern, key)
        if sub:
            return sub.expand(template)
    return None


@dataclass
class ConversionReport:
    """What :func:`convert_state_dict` did with every release key."""

    mapped: dict[str, str] = field(default_factory=dict)  # release key -> variant key
    mano: dict[str, tuple[str, str]] = field(default_factory=dict)  # release key -> (side, buffer)
    grids: dict[str, int] = field(default_factory=dict)  # release key -> map size
    dropped: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.unknown or self.missing or self.mismatched)

    def problems(self) -> str:
        parts = []
        for name in ("unknown", "missing", "mismatched"):
            keys = getattr(self, name)
            if keys:
                parts.append(f"{len(keys)} {name} key(s):\n  " + "\n  ".join(keys))
        return "\n".join(parts)


def load_manifest() -> dict[str, tuple[tuple[int, ...], str]]:
    """Release key -> (shape, dtype name) from ``release_manifest.json``."""
    keys = json.loads(MANIFEST_PATH.read_text())["keys"]
    return {k: (tuple(shape), dtype) for k, (shape, dtype) in keys.items()}


def read_release_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The ``net`` state dict of a release checkpoint (or a bare state dict), ``module.`` stripped.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file needs more than tensors and plain containers to load, or holds no
            name -> tensor mapping.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"release checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ValueError(
            f"{path} cannot be read with torch.load(weights_only=True): it holds objects other than "
            f"tensors and plain containers, and loading them would run pickled code. Refused.\n{exc}") from exc
    if isinstance(obj, dict) and isinstance(obj.get("net"), dict):
        obj = obj["net"]
    if not isinstance(obj, dict) or not obj or not all(torch.is_tensor(v) for v in obj.values()):
        raise ValueError(f"{path} holds no state dict (name -> tensor), nor one under 'net'")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in obj.items()}


def convert_state_dict(release: Mapping[str, torch.Tensor],
                       target_shapes: Mapping[str, tuple[int, ...]]) -> tuple[dict[str, torch.Tensor], ConversionReport]:
    """Rename a release state dict into the variant's names and check it against ``target_shapes``.

    Args:
        release: release key -> tensor.
        target_shapes: variant key -> shape (e.g. from ``model.state_dict()``).
    Returns:
        (variant state dict, report). The state dict holds only mapped tensors; check
        ``report.ok`` (or use ``tools.import_release.import_release_checkpoint``, which raises).
    """
    report = ConversionReport()
    state: dict[str, torch.Tensor] = {}
    for key, value in release.items():
        if (m := MANO_KEY.fullmatch(key)) is not None:
            report.mano[key] = (m.group(1), m.group(2))
        elif (m := GRID_KEY.fullmatch(key)) is not None:
            report.grids[key] = 16 if m.group(1) == "4" else 32
        elif DROPPED_KEY.fullmatch(key):
            report.dropped.append(key)
        elif (name := map_key(key)) is None or name not in target_shapes:
            report.unknown.append(key if name is None else f"{key} (-> {name}, not in the network)")
        elif tuple(value.shape) != tuple(target_shapes[name]):
            report.mismatched.append(f"{key} {tuple(value.shape)} -> {name} {tuple(target_shapes[name])}")
        else:
            report.mapped[key] = name
            state[name] = value
    report.missing = sorted(set(target_shapes) - set(state) - {report_name(m) for m in report.mismatched})
    return state, report


def report_name(mismatch: str) -> str:
    """Variant key of a :attr:`ConversionReport.mismatched` entry."""
    return mismatch.split(" -> ")[1].split(" ")[0]


#: Release MANO buffer -> function of the project's hand model returning the same array.
MANO_BUFFERS = {
    "th_shapedirs": lambda d: d.shapedirs,
    "th_posedirs": lambda d: d.posedirs,
    "th_v_template": lambda d: d.v_template[None],
    "th_J_regressor": lambda d: d.J_regressor,
    "th_weights": lambda d: d.weights,
    "th_faces": lambda d: d.faces,
    "th_hands_mean": lambda d: d.hands_mean[None],
    "th_comps": lambda d: d.hands_components,
    "th_selected_comps": lambda d: d.hands_components,
    "th_betas": lambda d: np.zeros((1, d.num_betas)),
}


def check_aux(release: Mapping[str, torch.Tensor], report: ConversionReport, hand_data: Mapping,
              atol: float = 1e-6) -> list[str]:
    """Compare the release's MANO buffers and grids with the user's MANO files and the formula.

    Args:
        hand_data: {side: HandModelData} as loaded from ``--mano-dir``.
    Returns:
        One line per disagreement (empty when all agree).
    """
    from .mfp import cell_centres

    bad = []
    for key, (side, buf) in report.mano.items():
        if buf not in MANO_BUFFERS:
            bad.append(f"{key}: unknown MANO buffer")
            continue
        want = np.asarray(MANO_BUFFERS[buf](hand_data[side]), dtype=np.float64)
        got = release[key].double().numpy()
        if got.shape != want.shape or not np.allclose(got, want, atol=atol, rtol=1e-5):
            bad.append(f"{key}: differs from the {side} MANO file given")
    for key, size in report.grids.items():
        want = cell_centres(size, size, torch.zeros((), dtype=torch.float64))
        got = release[key].double()
        if got.shape != want.shape or not torch.allclose(got, want):
            bad.append(f"{key}: not the {size}x{size} cell-centre grid")
    return bad


#: The whole key table, for documentation and tests: residual parts, joint-interaction rules
#: (after ``decoder.projecter_K.``) and the other whole-key rules.
KEY_RULES = {"trunk": RESIDUAL_PARTS, "joint": JOINT_PARTS, "top": TOP_PARTS}

__all__ = ["ConversionReport", "KEY_RULES", "MANIFEST_PATH", "check_aux", "convert_state_dict",
           "load_manifest", "map_key", "read_release_state_dict"]
