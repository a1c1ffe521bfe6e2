"""The prepared GPU run of issue 13 works end to end, as a CPU dry run (``DEVICE=cpu SCALE=dry``).

A lent GPU comes in 15-minute budgets: a script that breaks there wastes one. What only a GPU
shows (capture, the speeds) is not checked here; every command, flag and output file is.
"""
import os
import subprocess
import sys

import pytest

from interhand_perception.paths import REPO_ROOT


@pytest.mark.slow
def test_gpu_bench_run_dry_run(tmp_path):
    env = dict(os.environ, OUT=str(tmp_path), DEVICE="cpu", SCALE="dry", PY=sys.executable,
               ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    proc = subprocess.run(["bash", "scripts/gpu_bench_run.sh"], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "(exit" not in out, out[-3000:]  # every step ran to the end
    log = (tmp_path / "run.log").read_text()
    for step in ("machine", "1. targets", "2. the node's frame", "3. fp16 / bf16", "4. grid", "5. torch.compile", "done"):
        assert step in log, step
    assert "to TwoHands" in log and "| bf16 |" in log and "| fp16 |" in log
    assert (tmp_path / "precision.json").is_file()
