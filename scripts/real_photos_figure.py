"""Both reconstruction methods on the real test photos, as one picture for the README.

    .venv/bin/python scripts/real_photos_figure.py [--photos ../shared/real_hands] [--out docs/img/real_hands_methods.png]
        [--with-photos]

Per photo, top: keypoint fit; bottom: DIR (demo weights, MediaPipe crop). Each tile is the
hands projected with an assumed 60 deg camera (meshes + skeletons, yellow = DIR's crop) and the
side view. The photos' licences do not allow copying them into the repository, so by default
the hands are drawn on a grey canvas of the photo's size; ``--with-photos`` draws them over the
photos, for looking at on your own machine (never commit that picture).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from interhand_perception.paths import DEMO_WEIGHTS, REPO_ROOT


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", default=str(REPO_ROOT.parent / "shared" / "real_hands"))
    ap.add_argument("--out", default=str(REPO_ROOT / "docs" / "img" / "real_hands_methods.png"))
    ap.add_argument("--with-photos", action="store_true")
    ap.add_argument("--height", type=int, default=180)
    args = ap.parse_args()

    from interhand_perception.detection import MediaPipeHands
    from interhand_perception.hand_model import load_hand_model
    from interhand_perception.pipeline.methods import DIRMethod, KeypointFitMethod
    from interhand_perception.pipeline.placement import assumed_intrinsics
    from interhand_perception.network.reconstructor import HandReconstructor
    from interhand_perception.visualization.camera_overlay import panel

    det = MediaPipeHands()
    models = {s: load_hand_model(s) for s in ("left", "right")}
    methods = {"keypoint_fit": KeypointFitMethod(models, det),
               "dir": DIRMethod(HandReconstructor.from_checkpoint(DEMO_WEIGHTS, device="cpu"), "detect", detector=det)}
    faces = {s: m.faces for s, m in models.items()}
    photos = sorted(p for p in Path(args.photos).iterdir() if p.suffix.lower() in (".jpg", ".png"))
    rows = []
    for name, method in methods.items():
        tiles = []
        for p in photos:
            rgb = cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB)
            intr = assumed_intrinsics(rgb.shape[1], rgb.shape[0], 60.0)
            if name == "dir":
                method.tracker.reset()
            frame, report = method(rgb, intr, 0.0)
            valid = frame.confidence >= 0.3
            tile = panel(rgb, frame.placed.vertices, frame.placed.joints, valid, faces, intr.matrix(),
                         report.get("box") if name == "dir" else None, height=args.height,
                         caption=f"{name}: {p.stem[:22]} ({int(valid.sum())})", show_image=args.with_photos)
            tiles.append(tile)
        rows.append(tiles)
    from interhand_perception.visualization.overlay import grid

    tile_w = int(args.height * 2.4)

    def fit(t: np.ndarray) -> np.ndarray:  # letterbox into one tile size
        s = min(tile_w / t.shape[1], args.height / t.shape[0])
        t = cv2.resize(t, (int(t.shape[1] * s), int(t.shape[0] * s)), interpolation=cv2.INTER_AREA)
        out = np.full((args.height, tile_w, 3), 255, np.uint8)
        out[:t.shape[0], :t.shape[1]] = t
        return out

    cols = 4
    pairs = [[fit(rows[0][i]), fit(rows[1][i])] for i in range(len(photos))]
    out = grid([[np.concatenate(pairs[i], axis=0) for i in range(j, min(j + cols, len(pairs)))]
                for j in range(0, len(pairs), cols)])
    cv2.imwrite(args.out, cv2.cvtColor(out, cv2.COLOR_RGB2BGR))
    print(f"wrote {args.out} ({', '.join(p.name for p in photos)})")


if __name__ == "__main__":
    main()
