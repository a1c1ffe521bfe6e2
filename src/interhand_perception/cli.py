"""The ``interhand`` command: train, evaluate, benchmark, generate data.

Every sub-command has its own ``--help``. Heavy imports happen inside the sub-commands so that
``interhand --help`` answers at once.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .paths import DEMO_WEIGHTS

EPILOG = """\
examples:
  interhand demo                                               hands_node on a synthetic camera over ROS 2
  interhand infer photo.jpg                                    hands in a photo/folder/video (MediaPipe + fit)
  interhand infer clip.mp4 --method dir --fx 600               the same with DIR
  interhand train --config configs/demo_r18_128.yaml          train the demo model (CPU ok)
  torchrun --nproc_per_node 2 -m interhand_perception.cli train --config C.yaml   (DDP)
  interhand eval --checkpoint weights/demo_r18_128.safetensors  metrics on the synthetic test split
  interhand eval --checkpoint W --data interhand26m --root /data/InterHand2.6M --mano-dir /data/mano
  interhand eval-placement --out placement.json                keypoint fit's 3D placement on rendered frames
  interhand bench                                              latency/parameter table
  interhand bench --node --devices cpu                         hands_node cost per frame (640x480)
  interhand bench --devices cuda --stages 2                    GPU variants: eager, fp16/bf16, CUDA graph, compiled
  interhand bench --node --no-ros --devices cuda               the node's frame on a GPU box without ROS 2
  interhand eval --precision-check bf16,fp16                   fp16/bf16 autocast against fp32 (held-out split)
  interhand bench --train --steps 100                          training samples/s, old vs new path
  interhand gen-data --out data_cache/syn128 --num 20000 --img-size 128
  interhand export onnx --check                                demo weights -> ONNX (cached) + parity check
  interhand export tensorrt --precision fp16                   demo weights -> TensorRT engine (cached, per GPU)
  interhand import-release dir.pth --mano-dir M --out dir_release.safetensors   the DIR authors' weights

hand models: without --mano-dir the built-in hand model is used (same parameterisation as MANO;
MANO itself is licence-gated and never shipped, see README "Real MANO").
"""


def _cmd_train(args: argparse.Namespace) -> int:
    from .training.config import load_run_config, parse_overrides
    from .training.trainer import train

    cfg = load_run_config(args.config, parse_overrides(args.set))
    summary = train(cfg, resume=args.resume, quiet=args.quiet)
    if summary.get("eval") is not None:
        print(json.dumps(summary, indent=2))
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    if args.precision_check:
        return _precision_check(args)
    from .evaluation.evaluate import evaluate_checkpoint, format_report

    res = evaluate_checkpoint(args.checkpoint, data=args.data, root=args.root, split=args.split,
                              num_samples=args.samples, iv_samples=args.iv_samples, device=args.device,
                              mano_dir=args.mano_dir, batch_size=args.batch_size,
                              overlay=args.overlay or None)
    print(format_report(res))
    if res.get("overlay"):
        print(f"wrote {res['overlay']} (input | DIR prediction | side view | ground truth)")
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=2))
        print(f"wrote {args.out}")
    return 0


def _precision_check(args: argparse.Namespace) -> int:
    from .evaluation.precision import check_checkpoint, format_precision_table

    res = check_checkpoint(args.checkpoint, args.precision_check, data=args.data, root=args.root, split=args.split,
                           num_samples=args.samples, device=args.device, mano_dir=args.mano_dir,
                           batch_size=args.batch_size)
    print(format_precision_table(res))
    print(f"{res['wall_s']:.0f} s wall time")
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=2))
        print(f"wrote {args.out}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .ros.environment import ensure_ros_env

    ensure_ros_env(args.argv)  # re-executes with the ROS 2 workspace on the paths if needed
    from .tools.demo import run_demo

    summary = run_demo(args)
    return 0 if summary.get("frames_answered", 0) > 0 else 1


SYNTHETIC_WARNING = ("interhand infer: warning: {ckpt} was trained on synthetic renders only (data.kind: synthetic); "
                     "it is not meant for real images: expect hands in the wrong place and confidences that mean "
                     "little. For real photos use the default --method keypoint_fit, or DIR weights trained on "
                     "InterHand2.6M (docs/release_weights.md).")


def quiet_native_logs() -> None:
    """Ask MediaPipe's C++ side (glog/absl), TFLite and protobuf to keep quiet, before MediaPipe
    is imported (what they still print is kept off the terminal by ``tools.infer.native_stderr_to``)."""
    import warnings

    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.filterwarnings("ignore", message=r"SymbolDatabase\.GetPrototype\(\) is deprecated")


def _cmd_infer(args: argparse.Namespace) -> int:
    import tempfile
    from dataclasses import replace

    from .dir_net.checkpoint import trained_on
    from .pipeline.methods import MethodUnavailable
    from .pipeline.pipeline import Pipeline, post_config
    from .pipeline.config import ConfigError, validate
    from .tools.infer import OutputExists, RunInfo, check_out_dir, list_inputs, native_stderr_to, run_infer

    out = Path(args.out)
    try:
        list_inputs(Path(args.path))  # a missing or unsupported input fails before anything loads
        check_out_dir(out, args.force)
    except (OutputExists, FileNotFoundError, ValueError) as e:
        print(f"interhand infer: {e}", file=sys.stderr)
        return 2
    if not args.verbose:
        quiet_native_logs()
    log = tempfile.TemporaryFile(mode="w+")
    try:
        params = validate({"method": args.method, "checkpoint": args.checkpoint or "", "mano_dir": args.mano_dir or "",
                           "device": args.device, "precision": args.precision, "crop_mode": args.crop_mode,
                           "mirrored": bool(args.mirrored), "min_confidence": float(args.min_confidence)})
        with native_stderr_to(log, not args.verbose):
            pipeline = Pipeline.from_params(params)
    except (ConfigError, MethodUnavailable) as e:
        print(f"interhand infer: {e}", file=sys.stderr)
        return 2
    kind = trained_on(params.checkpoint) if args.method == "dir" else None
    if kind == "synthetic":
        print(SYNTHETIC_WARNING.format(ckpt=Path(params.checkpoint).name), file=sys.stderr)

    def make_pipeline(video: bool) -> Pipeline:
        pipeline.reset(replace(post_config(params), smoothing=video and not args.no_smoothing))
        return pipeline

    info = RunInfo(method=args.method, model=pipeline.model_id, device=pipeline.device, trained_on=kind,
                   mirrored=bool(args.mirrored), command=" ".join(["interhand", *args.argv]))
    intr = {"fx": args.fx, "fy": args.fy, "cx": args.cx, "cy": args.cy, "hfov_deg": args.hfov}
    try:
        res = run_infer(args.path, make_pipeline, str(out), intr, info, fmt=args.format, max_frames=args.max_frames,
                        height=args.overlay_height, show_image=not args.no_image, quiet=not args.verbose, log=log)
    except (FileNotFoundError, ValueError) as e:
        print(f"interhand infer: {e}", file=sys.stderr)
        print(f"outputs so far in {out.resolve()}/" if out.is_dir() else "nothing written", file=sys.stderr)
        return 2
    print(f"{res['frames']} frame(s), {res['hands']} hand(s) ({args.method}, {pipeline.model_id} on {pipeline.device})")
    if res["missed"] and res["frames"] > 1:
        print(f"{len(res['missed'])} of {res['frames']} frame(s) with fewer than 2 hands from the detector")
    for f in res["outputs"][:6]:
        print(f"wrote {Path(f).name}")
    if len(res["outputs"]) > 6:
        print(f"... and {len(res['outputs']) - 6} more")
    print(f"outputs in {res['out']}/")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    if args.train:
        from .training.bench_train import run_train_bench
        from .training.config import parse_overrides

        run_train_bench(config=args.config, steps=args.steps, warmup=args.warmup, batch_size=args.batch,
                        devices=(args.devices or "auto").split(","), overrides=parse_overrides(args.set),
                        threads=args.threads, with_compile=args.compile)
        return 0
    devices = args.devices or ("cpu" if args.node else "cpu,cuda")
    if args.node:
        if not args.no_ros:
            from .ros.environment import ensure_ros_env

            ensure_ros_env(args.argv)
        from .tools.bench_node import run_node_bench

        run_node_bench(checkpoint=args.checkpoint, repeats=args.repeats, device=devices.split(",")[0],
                       threads=args.threads or 1, ros=not args.no_ros)
        return 0
    from .tools.bench import run_bench

    run_bench(backbones=args.backbones.split(","), stages=[int(s) for s in args.stages.split(",")],
              img_size=args.img_size, repeats=args.repeats, devices=devices.split(","),
              threads=args.threads, variants=[v.strip() for v in args.variants.split(",")] if args.variants else None,
              batches=tuple(int(b) for b in args.batches.split(",")))
    return 0


def _cmd_eval_placement(args: argparse.Namespace) -> int:
    import torch

    from .evaluation.placement_eval import evaluate_placement, format_table, keypoint_fit_method
    from .evaluation.placement_frames import CameraSpec, frame_plan, render_frame

    torch.set_num_threads(1)
    edges = [float(x) for x in args.edges.split(",")]
    camera = CameraSpec(args.width, args.height, args.focal)
    if args.save_frames:
        out = Path(args.save_frames)
        out.mkdir(parents=True, exist_ok=True)
        import cv2

        plan = frame_plan(edges, args.frames, args.single)[:args.save_count]
        for index, distance, hands in plan:
            frame = render_frame(index, distance, hands, seed=args.seed, camera=camera)
            cv2.imwrite(str(out / f"frame{index:03d}_{hands}h_{distance:.2f}m.png"), frame.rgb[..., ::-1])
        print(f"wrote {len(plan)} frame(s) to {out}")
    method, faces, detector = keypoint_fit_method(legacy=args.legacy, mano_dir=args.mano_dir,
                                                  label_weight=args.label_weight)
    try:
        res = evaluate_placement(method, faces, edges=edges, frames_per_bin=args.frames, single_per_bin=args.single,
                                 seed=args.seed, settings=args.settings.split(","), camera=camera,
                                 min_confidence=args.min_confidence, hfov_deg=args.hfov,
                                 progress=None if args.quiet else lambda line: print(line, file=sys.stderr))
    finally:
        detector.close()
    res["method"] = "keypoint_fit (legacy)" if args.legacy else "keypoint_fit"
    print(format_table(res))
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=1))
        print(f"wrote {args.out}")
    return 0


def _cmd_gen_data(args: argparse.Namespace) -> int:
    from .data.synthetic import SyntheticConfig, pregenerate

    cfg = SyntheticConfig(img_size=args.img_size, seed=args.seed, version=args.generator_version)
    if args.preview:
        from .data.synthetic import save_preview

        path = save_preview(args.preview, n=args.num, split=args.split, config=cfg)
        print(f"wrote a preview of {args.num} {args.split} samples (image | labels | dense) to {path}")
        return 0
    if not args.out:
        print("interhand gen-data: --out FOLDER is required (or --preview PNG)", file=sys.stderr)
        return 2
    out = pregenerate(args.out, num_samples=args.num, split=args.split, config=cfg,
                      shard_size=args.shard_size, workers=args.workers, mano_dir=args.mano_dir)
    print(f"wrote {args.num} {args.split} samples ({args.img_size}px, generator version "
          f"{args.generator_version}) to {out}")
    return 0


def _cmd_export_onnx(args: argparse.Namespace) -> int:
    try:
        return _export_onnx(args)
    except (ImportError, RuntimeError) as exc:  # onnx / onnxruntime missing (BackendUnavailable is a RuntimeError)
        print(f"interhand export onnx: {exc} (pip install 'interhand_perception[onnx]')", file=sys.stderr)
        return 2


def _export_onnx(args: argparse.Namespace) -> int:
    from .network.export_onnx import ensure_onnx, export_checkpoint, read_metadata
    from .network.parity import PARITY_TOLERANCE, check_parity

    def say(msg: str) -> None:
        print(f"[export onnx] {msg}", flush=True)

    if args.out:
        path = export_checkpoint(args.checkpoint, args.out, opset=args.opset, mano_dir=args.mano_dir, progress=say)
    else:
        path = ensure_onnx(args.checkpoint, opset=args.opset, mano_dir=args.mano_dir, progress=say)
        say(f"ONNX file: {path}")
    meta = read_metadata(path)
    sha = meta.get("checkpoint_sha256", "?")[:12]
    say(f"opset {meta.get('opset')}, {meta.get('img_size')} px, checkpoint sha256 {sha}")
    if not args.check:
        return 0
    say(f"parity check: PyTorch vs ONNX Runtime on {args.samples} synthetic crops")
    report, ok = check_parity(args.checkpoint, path, num_images=args.samples, mano_dir=args.mano_dir)
    for key, value in report.items():
        say(f"  max |diff| {key:<14} {value:.2e}  (bound {PARITY_TOLERANCE[key]:.0e})")
    say("parity OK" if ok else "parity FAILED")
    return 0 if ok else 1


def _cmd_export_tensorrt(args: argparse.Namespace) -> int:
    def say(msg: str) -> None:
        print(f"[export tensorrt] {msg}", flush=True)

    try:
        from .network.tensorrt_backend import prepare_engine

        prepared = prepare_engine(args.checkpoint, onnx_path=args.onnx, precision=args.precision,
                                  cache_dir=args.cache_dir, max_batch=args.max_batch, mano_dir=args.mano_dir,
                                  progress=say)
    except (ImportError, RuntimeError) as exc:  # TensorRT, the GPU or onnx missing; a failed build
        print(f"interhand export tensorrt: {exc}", file=sys.stderr)
        return 2
    say(f"engine: {prepared.path}")
    say(f"cache key: {prepared.key}")
    return 0


# ---- import-release: the authors' DIR weights -> a release-variant checkpoint ----------------
def _cmd_import_release(args: argparse.Namespace) -> int:
    from .tools.import_release import import_release_checkpoint

    path, report = import_release_checkpoint(args.checkpoint, args.mano_dir, args.out,
                                             allow_mano_mismatch=args.allow_mano_mismatch)
    print(f"[import-release] {len(report.mapped)} tensors mapped; {len(report.mano)} MANO buffers and "
          f"{len(report.grids)} grids checked, not stored; dropped (unused): {', '.join(report.dropped) or 'none'}")
    print(f"[import-release] wrote {path} (model.variant: release); use it with --mano-dir {args.mano_dir}")
    return 0


def _add_import_release_parser(sub) -> None:
    r = sub.add_parser("import-release", help="convert the DIR authors' released checkpoint (.pth) to safetensors",
                       description="Read the release's checkpoint with torch.load(weights_only=True), map every "
                       "tensor onto the release variant (table: dir_net/release_import.py), refuse unknown, "
                       "missing or mis-shaped keys, check its MANO arrays against --mano-dir, and write a "
                       "checkpoint that eval/infer/the node load like any other. The weights are not shipped: "
                       "see README 'The authors' DIR weights'.")
    r.add_argument("checkpoint", help="the release's .pth file")
    r.add_argument("--mano-dir", required=True, help="folder with MANO_RIGHT.pkl and MANO_LEFT.pkl")
    r.add_argument("--out", required=True, help="output .safetensors file")
    r.add_argument("--allow-mano-mismatch", action="store_true",
                   help="write even if the checkpoint's MANO arrays differ from --mano-dir's files")
    r.set_defaults(func=_cmd_import_release)


def _cmd_params(args: argparse.Namespace) -> int:
    from .pipeline.config import help_text, render_markdown, render_yaml

    print(render_yaml() if args.format == "yaml" else render_markdown() if args.format == "markdown" else help_text(),
          end="" if args.format != "help" else "\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="interhand", description="Two interacting hands from one RGB image (DIR): training, "
        "evaluation, benchmarks. The ROS 2 node lives in ros2_ws/.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    pp = sub.add_parser("params", help="print the node's parameter table (as config/hands.yaml, markdown or --help)",
                        description="The parameters of hands_node, `interhand infer` and the pipeline come from one "
                        "table (src/interhand_perception/pipeline/config.py). This prints it as the shipped "
                        "config/hands.yaml (--format yaml; `interhand params > my.yaml` gives a file to edit), as "
                        "the markdown table of docs/node.md, or as `hands_node --help` prints it.")
    pp.add_argument("--format", choices=("yaml", "markdown", "help"), default="yaml")
    pp.set_defaults(func=_cmd_params)

    t = sub.add_parser("train", help="train DIR from a YAML config (progress bar, checkpoints, curves)",
                       description="Train DIR. The run directory (train.out_dir) receives config.yaml, "
                       "last.safetensors (weights + embedded config), train_state.pt (for --resume), "
                       "log.jsonl and curves.png. Under torchrun it trains with DDP (gloo on CPU, nccl on CUDA).")
    t.add_argument("--config", required=True, help="YAML run config (see configs/)")
    t.add_argument("--resume", action="store_true", help="continue from out_dir/last.safetensors + train_state.pt")
    t.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="override config values, e.g. --set train.epochs=3 model.backbone=resnet18")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=_cmd_train)

    e = sub.add_parser("eval", help="MPJPE/MPVPE (3 protocols), MRRPE, MIAA, PCK/AUC, IV per stage",
                       description="Evaluate a checkpoint on the held-out synthetic test split or on "
                       "InterHand2.6M (v1.0, 5 fps, interacting frames). Errors in mm, MIAA in crop pixels, "
                       "interpenetration volume in cm^3.")
    e.add_argument("--checkpoint", default=str(DEMO_WEIGHTS), help="weights (.safetensors); default: the demo weights")
    e.add_argument("--data", choices=("synthetic", "interhand26m"), default="synthetic")
    e.add_argument("--root", help="InterHand2.6M root folder (with annotations/ and images/)")
    e.add_argument("--split", default="test")
    e.add_argument("--samples", type=int, default=500, help="number of test samples (default 500)")
    e.add_argument("--iv-samples", type=int, default=100, help="samples on which interpenetration volume is computed")
    e.add_argument("--mano-dir", help="folder with MANO_RIGHT.pkl / MANO_LEFT.pkl (needed for InterHand2.6M)")
    e.add_argument("--device", default="auto", help="auto | cpu | cuda")
    e.add_argument("--batch-size", type=int, default=16)
    e.add_argument("--out", help="also write the results as JSON here")
    e.add_argument("--overlay", default="eval_overlay.png",
                   help="PNG of predictions vs. ground truth for the first samples ('' to skip; default %(default)s)")
    e.add_argument("--precision-check", metavar="DTYPES", default=None,
                   help="instead of the evaluation: run the same test samples in fp32 and under torch.autocast to "
                   "each of DTYPES (comma list of bf16, fp16) and print, per dtype, how far its outputs lie from "
                   "fp32's on the same sample (final-stage 3D joints and vertices, each hand wrist-relative, and the "
                   "right-minus-left offset in mm; projected 2D joints in crop pixels; median/p99/max over samples), "
                   "MPJPE against the ground truth in fp32 -> dtype, and the share of hand pixels whose left/right "
                   "segmentation flips; --out gets the JSON, --overlay and --iv-samples are not used. A dtype "
                   "autocast cannot run on the device is reported as unsupported. On a CPU this is a stand-in for "
                   "the GPU's numerics (same reduced-precision convolutions and matrix products, other kernels)")
    e.set_defaults(func=_cmd_eval)

    b = sub.add_parser("bench", help="forward latency and parameter counts (ResNet-18/50, T = 0, 1, 2)",
                       description="Median forward latency of the network at batch 1 over repeated runs, "
                       "for each backbone and number of refinement stages, on each device given. With --train: "
                       "training throughput of a run config, old training path against the new one.")
    b.add_argument("--backbones", default="resnet18,resnet50")
    b.add_argument("--stages", default="0,1,2")
    b.add_argument("--img-size", type=int, default=256)
    b.add_argument("--repeats", type=int, default=10)
    b.add_argument("--devices", default=None, help="devices to try; unavailable ones are skipped (default: "
                   "cpu,cuda; cpu for --node; auto = cuda if available else cpu for --train)")
    b.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    b.add_argument("--variants", default=None, help="CUDA only: comma-separated GPU variants (default all: "
                   "'eager fp32,eager fp16,eager bf16,graph fp32,graph fp16,graph bf16,graph fp16 NHWC,compiled')")
    b.add_argument("--batches", default="1,16", help="CUDA only: batch sizes of the GPU variants (default %(default)s)")
    b.add_argument("--node", action="store_true", help="instead: hands_node's own per-frame cost at 640x480 "
                   "(conversion, crop, post-processing, message building, publishing over ROS 2), beside the network")
    b.add_argument("--no-ros", action="store_true", help="--node on a machine without ROS 2 (e.g. a GPU box): "
                   "decode and the pipeline only, message building and publishing not timed")
    b.add_argument("--checkpoint", default=str(DEMO_WEIGHTS), help="weights for --node (default: the demo weights)")
    b.add_argument("--train", action="store_true", help="instead: training throughput (samples/s, data wait, "
                   "step time) of the old path (fp32, config's workers) against the new one (amp, channels_last, "
                   "auto workers, pinned memory), side by side")
    b.add_argument("--config", default=None, help="run config for --train (default configs/demo_r18_128.yaml)")
    b.add_argument("--steps", type=int, default=50, help="timed training steps per variant for --train (default 50)")
    b.add_argument("--warmup", type=int, default=5, help="untimed steps before them (default 5)")
    b.add_argument("--batch", type=int, default=None, help="batch size for --train (default: the config's)")
    b.add_argument("--compile", nargs="?", const="default", default=None, metavar="MODE",
                   help="--train: also time the new path with torch.compile (MODE: default, reduce-overhead, ...)")
    b.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="--train: config overrides")
    b.set_defaults(func=_cmd_bench)

    i = sub.add_parser(
        "infer", help="reconstruct the hands in an image, a folder of images or a video",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""Run the node's processing offline on PATH (an image, a folder of images, or a video).

Outputs, in --out (default infer_out/):
  <name>_hands.png    per image: [input with meshes, skeletons and boxes | side view] over a legend
  <name>_hands.json   next to it (or .npz with --format npz, vertices added): source, method, model,
                      trained_on (DIR weights' training data), camera used (fx, fy, cx, cy, width,
                      height, assumed: true when from --hfov, not --fx), crop box, hands the detector
                      found and their boxes, and per hand: side, valid, confidence, joints_3d (metres,
                      camera frame), joints_2d (pixels, the 3D joints projected with that camera),
                      wrist position and quaternion, pose (48), betas (10)
  <name>_hands.mp4    for a video, with one <name>_hands.json (or .npz) holding every frame's record
  summary.json        the command, method, model, and one line per input

Overlay legend: blue = left hand, orange = right hand (the person's sides); dashed boxes = the
detector's hands (coloured by side); yellow box = the crop the method ran on. "detector N" in the
caption = how many hands MediaPipe found (of 2); the hands drawn are those valid
(confidence >= --min-confidence).

The terminal shows a progress bar, one line per image where the detector found fewer than two hands
(which side it saw, which is missing), and the output folder at the end. MediaPipe/TFLite/absl
messages are kept out of it (--verbose shows them). A folder holding a previous run's outputs is
refused (exit status 2) unless --force, which deletes those files first.

--method dir with weights trained on synthetic renders only (the demo weights) prints a warning:
they are not meant for real images. DIR's confidence is lowered when both predicted hands lie in one
place (their joint boxes' IoU above 0.5; 0 at 0.85: pipeline/stacking.py).""")
    i.add_argument("path", help="image, folder of images, or video file")
    i.add_argument("--method", default="keypoint_fit", choices=("keypoint_fit", "dir"),
                   help="keypoint_fit (MediaPipe + hand-model fit, no weights; default) or dir (the DIR network)")
    i.add_argument("--checkpoint", default=None, help="DIR weights (default: the demo weights, synthetic-only)")
    i.add_argument("--crop-mode", default="detect", choices=("detect", "center", "full"),
                   help="DIR's crop: detect (MediaPipe, default), center, full (no detector: no 'detector N')")
    i.add_argument("--mano-dir", default=None, help="folder with MANO_{RIGHT,LEFT}.pkl (default: built-in hand)")
    i.add_argument("--device", default="auto")
    i.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "bf16"),
                   help="method dir on CUDA: fp16 / bf16 autocast (errors against fp32: docs/performance.md)")
    i.add_argument("--out", default="infer_out", help="output folder (default infer_out/)")
    i.add_argument("--force", action="store_true",
                   help="write into --out even if it holds a previous run's outputs (those files are deleted first)")
    i.add_argument("--fx", type=float, default=None, help="focal length in pixels (default: from --hfov)")
    i.add_argument("--fy", type=float, default=None, help="default: --fx")
    i.add_argument("--cx", type=float, default=None, help="default: the image centre")
    i.add_argument("--cy", type=float, default=None, help="default: the image centre")
    i.add_argument("--hfov", type=float, default=60.0,
                   help="assumed horizontal field of view without --fx (deg; the outputs say assumed: true)")
    i.add_argument("--mirrored", action="store_true", help="the images are mirrored (selfie camera): flipped back "
                   "first; overlays and 2D outputs are of the flipped-back image")
    i.add_argument("--no-smoothing", action="store_true", help="no One Euro filtering on videos")
    i.add_argument("--format", default="json", choices=("json", "npz"),
                   help="per-input record file: json, or npz (the record as JSON plus arrays, vertices included)")
    i.add_argument("--overlay-height", type=int, default=400,
                   help="height of each overlay PNG / video frame in pixels, legend included (default 400)")
    i.add_argument("--max-frames", type=int, default=None)
    i.add_argument("--min-confidence", type=float, default=0.3, help="hands below it are not valid (default 0.3)")
    i.add_argument("--no-image", action="store_true",
                   help="draw the hands on a grey canvas instead of the input (for inputs you may not share)")
    i.add_argument("--verbose", action="store_true", help="let MediaPipe/TFLite/absl messages through")
    i.set_defaults(func=_cmd_infer)

    x = sub.add_parser("export", help="export the network for other runtimes (onnx)",
                       description="Export a checkpoint for another inference runtime.")
    xsub = x.add_subparsers(dest="format", required=True, metavar="FORMAT")
    xo = xsub.add_parser("onnx", help="network + hand models as one ONNX graph (dynamic batch)",
                         description="Export a checkpoint to ONNX (network and both hand models in one graph, "
                         "dynamic batch, provenance in the metadata). Without --out the file goes to the cache "
                         "that the onnxruntime backend reads (~/.cache/interhand_perception/onnx, or "
                         "$INTERHAND_ONNX_CACHE), keyed by checkpoint hash, opset and exporter version.")
    xo.add_argument("--checkpoint", default=str(DEMO_WEIGHTS), help="weights (.safetensors); default: the demo weights")
    xo.add_argument("--out", help="the .onnx file to write (default: the cache)")
    xo.add_argument("--opset", type=int, default=17, help="ONNX opset, >= 17 (default 17)")
    xo.add_argument("--mano-dir", help="folder with MANO_{RIGHT,LEFT}.pkl when the checkpoint uses MANO")
    xo.add_argument("--check", action="store_true", help="then compare PyTorch and ONNX Runtime on synthetic crops")
    xo.add_argument("--samples", type=int, default=4, help="crops for --check (default 4)")
    xo.set_defaults(func=_cmd_export_onnx)
    xt = xsub.add_parser("tensorrt", help="TensorRT engine for this GPU (built once, cached)",
                         description="Build (or find in the cache) the TensorRT engine of a checkpoint for this GPU: "
                         "ONNX export (cached) -> engine, keyed by model hash, precision, TensorRT version and GPU "
                         "(docs/tensorrt.md). Needs TensorRT and an NVIDIA GPU.")
    xt.add_argument("--checkpoint", default=str(DEMO_WEIGHTS), help="weights (.safetensors); default: the demo weights")
    xt.add_argument("--onnx", help="ONNX export of the checkpoint (default: the cached export, exported first if missing)")
    xt.add_argument("--precision", default="fp16", choices=("fp16", "int8", "fp32"),
                    help="fp16 (default), int8 (calibrated on synthetic crops) or fp32")
    xt.add_argument("--cache-dir", default="~/.cache/interhand_perception/engines", help="engine cache (default %(default)s)")
    xt.add_argument("--max-batch", type=int, default=1, help="largest batch of the engine (default 1)")
    xt.add_argument("--mano-dir", help="folder with MANO_{RIGHT,LEFT}.pkl when the checkpoint uses MANO")
    xt.set_defaults(func=_cmd_export_tensorrt)

    from .tools.demo import add_parser as add_demo_parser

    add_demo_parser(sub)
    sub.choices["demo"].set_defaults(func=_cmd_demo)

    ep = sub.add_parser(
        "eval-placement", help="3D placement of the keypoint-fit method on rendered frames with known hands",
        description="Render full camera frames with known two-hand and one-hand scenes (the synthetic generator's "
        "people, version 2) at chosen distances, run the node's default method on them (MediaPipe + hand-model fit) "
        "and print, per bin of true wrist depth: detection rate, side correctness, wrist error (3D, camera frame: "
        "median / mean / p90 mm), wrist depth error (median absolute and signed, percent) and wrist-relative MPJPE. "
        "Settings: known (true intrinsics), assumed (60 deg field of view without camera_info) and depth (known, then "
        "the aligned depth image through pipeline.postprocess as the node does), and oracle (not a method: the true 3D hand "
        "placed on the detector's pixels, the floor of any method that places hands from them). Same --seed, same pixels.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ep.add_argument("--edges", default="0.3,0.45,0.6,0.8,1.0,1.2", help="distance bin edges (m)")
    ep.add_argument("--frames", type=int, default=8, help="two-hand frames per bin")
    ep.add_argument("--single", type=int, default=4, help="one-hand frames per bin")
    ep.add_argument("--seed", type=int, default=0)
    ep.add_argument("--settings", default="known,assumed,depth,oracle", help="comma list of known, assumed, depth, oracle (the true 3D hand on the detector's pixels: the floor any method placing hands from them meets)")
    ep.add_argument("--width", type=int, default=640)
    ep.add_argument("--height", type=int, default=480)
    ep.add_argument("--focal", type=float, default=600.0, help="true focal length (px)")
    ep.add_argument("--hfov", type=float, default=60.0, help="field of view of the 'assumed' intrinsics (deg)")
    ep.add_argument("--min-confidence", type=float, default=0.3, help="the node's min_confidence")
    ep.add_argument("--legacy", action="store_true", help="the method before issue 10 (MediaPipe's world-landmark "
                    "scale taken as metric, MediaPipe's side label alone), for before/after tables")
    ep.add_argument("--label-weight", type=float, default=0.5, help="weight of MediaPipe's label in the side decision")
    ep.add_argument("--mano-dir", default=None, help="fit MANO instead of the built-in hand (rendering stays built-in)")
    ep.add_argument("--out", help="also write the per-bin results and every hand's record as JSON here")
    ep.add_argument("--save-frames", metavar="DIR", help="also write the first rendered frames as PNG here")
    ep.add_argument("--save-count", type=int, default=6, help="how many frames --save-frames writes")
    ep.add_argument("--quiet", action="store_true", help="no per-frame progress")
    ep.set_defaults(func=_cmd_eval_placement)

    g = sub.add_parser("gen-data", help="pre-render synthetic two-hand samples into .npz shards",
                       description="Render synthetic two-hand samples (deterministic by split, index and seed) "
                       "into shards that training reads through data.cache_dir.")
    g.add_argument("--out", help="folder for the shards (and meta.json); required unless --preview")
    g.add_argument("--num", type=int, default=20000)
    g.add_argument("--split", default="train", choices=("train", "test"))
    g.add_argument("--img-size", type=int, default=256)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--shard-size", type=int, default=256)
    g.add_argument("--workers", type=int, default=0, help="worker processes (0 = this process)")
    g.add_argument("--mano-dir", help="render MANO hands instead of the built-in model")
    g.add_argument("--generator-version", type=int, default=2, choices=(1, 2),
                   help="2 (default): hands on a person's forearms, egocentric and third-person "
                        "cameras, palm/back skin cues; 1: the first generator (no handedness "
                        "cues; kept for comparison). Must match the config's data.generator_version")
    g.add_argument("--preview", metavar="PNG", help="instead of shards, write a picture of the first "
                   "--num samples (image, image with seg and 2D skeleton, dense map) to PNG")
    g.set_defaults(func=_cmd_gen_data)
    _add_import_release_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        return int(args.func(args) or 0)
    except (FileNotFoundError, ValueError) as exc:
        print(f"interhand {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
