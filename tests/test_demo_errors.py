"""The demo's per-frame errors (ros/demo.frame_errors) on a hand-made TwoHands-like message:
the side check and the right-minus-left error it prints (no ROS needed)."""
from types import SimpleNamespace

import numpy as np
import pytest

from interhand_perception.tools.demo import frame_errors


def msg_of(joints: np.ndarray, valid=(True, True)):
    hand = lambda j, v: SimpleNamespace(valid=v, joints=[SimpleNamespace(x=p[0], y=p[1], z=p[2]) for p in j])  # noqa: E731
    return SimpleNamespace(left=hand(joints[0], valid[0]), right=hand(joints[1], valid[1]))


def truth():
    rng = np.random.default_rng(0)
    j = rng.normal(0.0, 0.03, size=(2, 21, 3))
    j[0] += [-0.1, 0.0, 0.6]
    j[1] += [0.1, 0.0, 0.6]
    return {"joints3d": j}


def test_exact_answer():
    gt = truth()
    e = frame_errors(msg_of(gt["joints3d"]), gt)
    assert e["mpjpe"] == pytest.approx(0.0) and e["sides_ok"] == 2 and e["rel"] == pytest.approx(0.0)


def test_swapped_hands_fail_the_side_check():
    gt = truth()
    e = frame_errors(msg_of(gt["joints3d"][::-1]), gt)
    assert e["sides_ok"] == 0
    # the right-minus-left vector is reversed: its error is twice its length
    d = gt["joints3d"][1, 0] - gt["joints3d"][0, 0]
    assert e["rel"] == pytest.approx(2000 * np.linalg.norm(d))


def test_both_hands_at_one_place():
    """What an untrained network does: both wrists at one place (here the true left wrist). The
    right hand fails the side check, and the relative error is the whole true vector."""
    gt = truth()
    pred = gt["joints3d"] - gt["joints3d"][:, :1] + gt["joints3d"][0, 0]
    e = frame_errors(msg_of(pred), gt)
    assert e["sides_ok"] == 1
    assert e["rel"] == pytest.approx(1000 * np.linalg.norm(gt["joints3d"][1, 0] - gt["joints3d"][0, 0]))


def test_one_valid_hand_has_no_relative_error():
    gt = truth()
    e = frame_errors(msg_of(gt["joints3d"], valid=(True, False)), gt)
    assert e["valid"] == 1 and e["sides_ok"] == 1 and "rel" not in e
