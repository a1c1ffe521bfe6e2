"""One side (one checkout's code) of scripts/latency/side_by_side.py: JSON commands in, JSON lines out.

Usage (by side_by_side.py): PYTHONPATH=<checkout>/src python worker.py <tag> <tmp dir>
"""
import json, sys, time, warnings
import numpy as np, torch
warnings.simplefilter("ignore")
import interhand_perception
from interhand_perception.dir_net import DIRConfig, DIRNet
from interhand_perception.hand_model import load_hand_model
from interhand_perception.hand_model.joints import SIDES
from interhand_perception.network.backends import OnnxRuntimeBackend, PyTorchBackend
from interhand_perception.network.export_onnx import export_checkpoint
from interhand_perception.paths import DEMO_WEIGHTS
from interhand_perception.tools.bench import time_forward

tag = sys.argv[1]
torch.manual_seed(0)
hands = {s: load_hand_model(s) for s in SIDES}
variants = {}
for backbone in ("resnet18", "resnet50"):
    for t in (0, 1, 2):
        m = DIRNet(DIRConfig.from_dict({"backbone": backbone, "img_size": 256, "num_stages": t}), hands).eval()
        x = torch.randn(1, 3, 256, 256)
        variants[f"bench {backbone} T={t}"] = (lambda m=m, x=x, n=1: time_forward(m, x, n, warmup=0))
pt = PyTorchBackend(DEMO_WEIGHTS, device="cpu")
crop = np.random.default_rng(0).integers(0, 255, (128, 128, 3), dtype=np.uint8)
onnx_path = f"{sys.argv[2]}/demo_{tag}.onnx"
export_checkpoint(DEMO_WEIGHTS, onnx_path)
ort = OnnxRuntimeBackend(DEMO_WEIGHTS, onnx_path=onnx_path, device="cpu")
def timed(fn, n):
    out = []
    for _ in range(n):
        t0 = time.perf_counter(); fn(); out.append(time.perf_counter() - t0)
    return out
variants["pytorch backend, demo r18 128 T=2"] = lambda n=1: timed(lambda: pt.forward_raw(crop), n)
variants["onnxruntime backend, demo r18 128 T=2"] = lambda n=1: timed(lambda: ort.forward_raw(crop), n)
# the whole call: network + post-processing into TwoHandResult (what FrameProcessor times as "network")
variants["pytorch backend call, incl. postprocess"] = lambda n=1: timed(lambda: pt(crop), n)
variants["onnxruntime backend call, incl. postprocess"] = lambda n=1: timed(lambda: ort(crop), n)
for fn in variants.values():
    fn(n=2)  # warm-up
print("@@" + json.dumps({"ready": interhand_perception.__file__, "variants": list(variants),
                         "threads": torch.get_num_threads()}), flush=True)
for line in sys.stdin:
    cmd = json.loads(line)
    print("@@" + json.dumps(variants[cmd["variant"]](n=cmd["n"])), flush=True)
