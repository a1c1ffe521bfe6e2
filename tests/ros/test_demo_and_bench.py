"""``interhand demo`` and ``interhand bench --node`` run end to end over real ROS 2.

The demo is run as a user runs it (the ``interhand`` executable, which starts ``hands_node`` as
its own process); with a few frames it checks that every frame sent is answered, that the
printed accuracy is a real number, and that the overlay outputs are written. The benchmark is
run for one round: this checks that it works and prints its table, not how fast anything is
(speed is reported by the benchmark itself, never asserted in tests).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

from ros_guard import require_ros

require_ros()

import pytest  # noqa: E402

from interhand_perception.paths import DEMO_WEIGHTS  # noqa: E402

EXE = os.path.join(os.path.dirname(sys.executable), "interhand")


@pytest.mark.slow
def test_demo_streams_frames_and_reports_accuracy(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run([EXE, "demo", "--frames", "4", "--rate", "2", "--size", "128", "--device", "cpu",
                           "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "MPJPE" in proc.stdout and "frames_answered" in proc.stdout
    summary = json.loads((out / "demo_summary.json").read_text())
    # newest-frame-only: on a loaded machine the node may drop a frame rather than queue it
    assert summary["frames_sent"] == 4 and summary["frames_answered"] >= 2
    assert summary["frames_answered"] + summary["frames_dropped"] == 4
    assert summary["checkpoint"] == str(DEMO_WEIGHTS)
    assert 10.0 < summary["mpjpe_mm"] < 300.0 and summary["wrist_error_mm"] > 0
    assert 0.0 <= summary["sides_correct_pct"] <= 100.0 and "sides ok" in proc.stdout
    assert summary["latency_ms_mean"] > 0
    assert (out / "demo_strip.png").stat().st_size > 10_000
    assert (out / "demo_overlay.mp4").is_file()


@pytest.mark.slow
def test_node_bench_prints_every_backend_and_stage():
    proc = subprocess.run([EXE, "bench", "--node", "--devices", "cpu", "--repeats", "1"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for word in ("decode", "detect", "crop", "network", "lift_3d", "method_other", "post", "hands_msg", "other_msgs",
                 "to TwoHands", "e2e med", "e2e p95", "FPS", "x eager"):
        assert word in proc.stdout
    for variant in ("pytorch eager", "pytorch", "onnxruntime", "keypoint_fit"):
        assert f"\n{variant} " in proc.stdout, variant
    assert "crop_mode detect adds the two-hand search" in proc.stdout
