"""Export DIR to ONNX (network + both hand models in one graph), cache the file, read it back.

Why one graph: the hand models sit *inside* the refinement loop (each stage samples the image
features at the 2D joints of the previous stage's hand meshes), so a separate hand-model graph
would mean one ONNX Runtime call per stage and per hand model instead of one call per frame.
The graph is exported from the network with the inference fast paths of ``fast_inference``
installed (both hand models batched, the 1x1 MFP factorised): the same function with ~40 %
fewer nodes, which is what makes ONNX Runtime fast on the CPU (docs/cpu_speed.md).

Graph interface (opset >= 17, dynamic batch ``B``):

* input ``images``: (B, 3, S, S) float32, ImageNet-normalised RGB. The uint8 -> float
  normalisation is *not* folded in: measured, it saves < 0.1 ms of ~25 ms per frame, and a float
  input is what TensorRT and PyTorch take too.
* outputs (:func:`output_names`): per side ``{side}_{key}`` for the final stage's ``verts``
  (B, V, 3), ``joints`` (B, 21, 3), ``joints2d`` (B, 21, 2), ``verts2d`` (B, V, 2), ``params``
  (B, P) and ``camera`` (B, 3); ``offset`` (B, 3); ``seg`` (B, 3, S/8, S/8) logits; and
  ``stage{t}_{side}_joints`` (B, 21, 3) of the earlier stages (``TwoHandResult.stage_joints``).
  :func:`onnx_outputs_to_pred` turns them back into the dict ``HandReconstructor.postprocess``
  reads, so both runtimes share one post-processing.

Metadata (``metadata_props``, all strings, see :func:`read_metadata`): format, checkpoint
SHA-256, image size, configuration JSON, hand-model fingerprints, output names, opset and the
versions of torch / onnx / this exporter. An ONNX file exported with MANO contains the MANO
arrays as constants: like MANO itself, it must not be redistributed.

Cache: :func:`ensure_onnx` keys the file by checkpoint hash, opset, exporter version and torch
version, so a changed checkpoint is re-exported and an unchanged one is reused.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from ..dir_net.checkpoint import file_sha256
from ..hand_model.joints import SIDES
from .fast_inference import optimise_for_inference

ONNX_FORMAT = "interhand_perception/dir-onnx-v1"
#: Bump when the graph interface or the export recipe changes: cached files are re-exported.
EXPORT_VERSION = 2  # 2: issue 13 (index buffers, both hands batched in the release variant too)
DEFAULT_OPSET = 17
INPUT_NAME = "images"
STAGE_KEYS = ("verts", "joints", "joints2d", "verts2d", "params", "camera")
DEFAULT_CACHE_DIR = Path("~/.cache/interhand_perception/onnx")
CACHE_ENV = "INTERHAND_ONNX_CACHE"

Progress = Callable[[str], object]


# ----------------------------------------------------------------------------- graph interface
def output_names(num_stages: int) -> list[str]:
    """Names of the graph outputs, in order, for a network with ``num_stages`` refinement stages."""
    names = [f"{s}_{k}" for s in SIDES for k in STAGE_KEYS] + ["offset", "seg"]
    return names + [f"stage{t}_{s}_joints" for t in range(num_stages) for s in SIDES]


class ExportWrapper(nn.Module):
    """DIRNet with a flat tuple output (see :func:`output_names`).

    Forward: images (B, 3, S, S) -> tuple of tensors in :func:`output_names` order.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        pred = self.model(images)
        last = pred["stages"][-1]
        outs = [last[k][s] for s in SIDES for k in STAGE_KEYS] + [last["offset"], pred["seg"]]
        return tuple(outs + [st["joints"][s] for st in pred["stages"][:-1] for s in SIDES])


def onnx_outputs_to_pred(outputs: Sequence[np.ndarray] | dict, names: Sequence[str] | None = None) -> dict:
    """ONNX Runtime outputs -> the part of a ``DIRNet`` output dict that postprocess reads.

    Args:
        outputs: arrays in ``names`` order (``session.run(None, ...)``), or {name: array}.
        names: the graph's output names; needed when ``outputs`` is a sequence.
    Returns:
        {"stages": [{"joints": {side}} ..., final stage dict with ``STAGE_KEYS`` per side and
        "offset"], "seg": ...}, all torch tensors sharing memory with the arrays.
    """
    if not isinstance(outputs, dict):
        if names is None or len(names) != len(outputs):
            raise ValueError("pass the graph's output names, one per output")
        outputs = dict(zip(names, outputs))
    t = {k: torch.from_numpy(np.asarray(v)) for k, v in outputs.items()}
    last = {k: {s: t[f"{s}_{k}"] for s in SIDES} for k in STAGE_KEYS}
    last["offset"] = t["offset"]
    num_stages = sum(1 for k in t if k.startswith("stage") and k.endswith("_left_joints"))
    stages = [{"joints": {s: t[f"stage{i}_{s}_joints"] for s in SIDES}} for i in range(num_stages)]
    return {"stages": stages + [last], "seg": t["seg"]}


# ----------------------------------------------------------------------------- export

def exporter_versions() -> dict[str, str]:
    """Versions that determine the exported graph (recorded in the metadata)."""
    import onnx

    return {"torch": torch.__version__, "onnx": onnx.__version__, "exporter": "torch.onnx (TorchScript)",
            "export_version": str(EXPORT_VERSION)}


def dedupe_constants(graph, min_bytes: int = 1024) -> int:
    """Merge identical large ``Constant`` nodes of an ONNX graph in place; returns how many went.

    The tracer embeds a non-persistent buffer (the hand-model arrays) as a new constant at every
    use, i.e. once per refinement stage: ~11 MB of copies for the demo model.
    """
    seen, rename, kept = {}, {}, []
    for node in graph.node:
        if node.op_type == "Constant" and len(node.attribute) == 1 and node.attribute[0].name == "value":
            t = node.attribute[0].t
            if len(t.raw_data) >= min_bytes:
                key = (t.data_type, tuple(t.dims), hashlib.sha256(t.raw_data).digest())
                if key in seen:
                    rename[node.output[0]] = seen[key]
                    continue
                seen[key] = node.output[0]
        kept.append(node)
    for node in kept:
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]
    for out in graph.output:
        if out.name in rename:
            raise ValueError(f"graph output {out.name} is a duplicated constant")
    del graph.node[:]
    graph.node.extend(kept)
    return len(rename)


def export_model(model: nn.Module, out: str | os.PathLike, opset: int = DEFAULT_OPSET,
                 metadata: dict[str, str] | None = None, fast_paths: bool = True) -> Path:
    """Export a DIRNet (fast paths installed on a CPU float32 copy) to ``out``, atomically.

    Args:
        model: the network (any device/dtype; it is not modified).
        out: the ``.onnx`` file to write.
        opset: ONNX opset (>= 17: GridSample, LayerNormalization).
        metadata: extra ``metadata_props`` (strings).
        fast_paths: install ``fast_inference``'s paths first (False only to measure their gain).
    Returns:
        ``out`` as a Path.
    """
    import onnx

    if opset < 17:
        raise ValueError(f"opset must be >= 17 (GridSample, LayerNormalization), got {opset}")
    net = copy.deepcopy(model).float().cpu().eval()
    applied = optimise_for_inference(net) if fast_paths else []
    size, names = net.config.img_size, output_names(net.config.num_stages)
    example = torch.zeros(2, 3, size, size)  # batch 2, so no size-1 axis gets specialised
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # TracerWarnings and the legacy-exporter notice
            torch.onnx.export(ExportWrapper(net), (example,), tmp, dynamo=False, opset_version=opset,
                              input_names=[INPUT_NAME], output_names=names,
                              dynamic_axes={n: {0: "batch"} for n in [INPUT_NAME, *names]})
        proto = onnx.load(tmp)
        dedupe_constants(proto.graph)
        onnx.checker.check_model(proto)
        props = {"format": ONNX_FORMAT, "img_size": str(size), "num_stages": str(net.config.num_stages),
                 "outputs": json.dumps(names), "opset": str(opset), "fast_paths": ",".join(applied),
                 **exporter_versions(), **(metadata or {})}
        for key, value in props.items():
            proto.metadata_props.add(key=key, value=str(value))
        onnx.save(proto, tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a model file is not a secret
        os.replace(tmp, out)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return out


def export_checkpoint(checkpoint: str | os.PathLike, out: str | os.PathLike, opset: int = DEFAULT_OPSET,
                      mano_dir: str | None = None, progress: Progress | None = None) -> Path:
    """Export a ``.safetensors`` checkpoint to ONNX with its provenance in the metadata.

    Args:
        checkpoint: weights written by ``interhand train`` (config embedded).
        out: the ``.onnx`` file to write.
        opset: ONNX opset.
        mano_dir: MANO folder when the checkpoint was trained with MANO.
        progress: called with one-line messages.
    """
    from .reconstructor import HandReconstructor

    say = progress or (lambda msg: None)
    say(f"loading {checkpoint}")
    rec = HandReconstructor.from_checkpoint(checkpoint, device="cpu", mano_dir=mano_dir)
    meta = {"checkpoint": Path(checkpoint).name, "checkpoint_sha256": file_sha256(checkpoint),
            "config": json.dumps(rec.config, sort_keys=True), "hand_models": json.dumps(rec.hand_model_ids)}
    say(f"exporting to {out} (opset {opset}, dynamic batch)")
    path = export_model(rec.model, out, opset=opset, metadata=meta)
    say(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return path


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file as a dict (empty values for a foreign file)."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in proto.metadata_props}


# ----------------------------------------------------------------------------- cache
def cache_dir(path: str | os.PathLike | None = None) -> Path:
    """The ONNX cache folder: ``path``, else $INTERHAND_ONNX_CACHE, else ~/.cache/interhand_perception/onnx."""
    return Path(path or os.environ.get(CACHE_ENV) or DEFAULT_CACHE_DIR).expanduser()


def cache_key(checkpoint_sha256: str, opset: int = DEFAULT_OPSET) -> str:
    """``<sha256[:16]>-op<opset>-x<EXPORT_VERSION>-torch<version>``: what the graph depends on."""
    torch_version = torch.__version__.split("+")[0]
    return f"{checkpoint_sha256[:16]}-op{int(opset)}-x{EXPORT_VERSION}-torch{torch_version}"


def cached_onnx_path(checkpoint: str | os.PathLike, opset: int = DEFAULT_OPSET,
                     directory: str | os.PathLike | None = None, sha256: str | None = None) -> Path:
    """Where the cached export of ``checkpoint`` lives (whether or not it exists yet)."""
    sha = sha256 or file_sha256(checkpoint)
    return cache_dir(directory) / f"{Path(checkpoint).stem}-{cache_key(sha, opset)}.onnx"


def ensure_onnx(checkpoint: str | os.PathLike, opset: int = DEFAULT_OPSET, directory: str | os.PathLike | None = None,
                mano_dir: str | None = None, progress: Progress | None = None) -> Path:
    """The cached ONNX export of ``checkpoint``, exported first when missing or stale.

    A cached file whose metadata does not name this checkpoint's hash (e.g. a truncated or
    foreign file under the same name) is exported again.
    """
    sha = file_sha256(checkpoint)
    path = cached_onnx_path(checkpoint, opset, directory, sha)
    if path.is_file():
        try:
            if read_metadata(path).get("checkpoint_sha256") == sha:
                return path
        except Exception as exc:  # noqa: BLE001 - any unreadable cache entry is simply rebuilt
            if progress:
                progress(f"cached {path.name} is unreadable ({type(exc).__name__}); exporting again")
    if progress:
        progress(f"no cached ONNX export for {Path(checkpoint).name} (sha256 {sha[:12]}): exporting once")
    return export_checkpoint(checkpoint, path, opset=opset, mano_dir=mano_dir, progress=progress)
