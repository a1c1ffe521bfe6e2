"""Two predicted hands stacked in one place lose confidence (``pipeline.stacking``)."""
from __future__ import annotations

import numpy as np
import pytest

from interhand_perception.pipeline.stacking import box_iou, joint_box, stacked_confidence, stacked_factor


def _hand(x0, y0, x1, y1):
    """(21, 2) joints spanning the box x0..x1, y0..y1."""
    t = np.linspace(0.0, 1.0, 21)
    return np.stack([x0 + t * (x1 - x0), y0 + t[::-1] * (y1 - y0)], axis=1)


def test_the_worked_case_of_the_docstring():
    # boxes [0, 10] x [0, 10] and [1, 11] x [0, 10]: intersection 90, union 110
    joints = np.stack([_hand(0, 0, 10, 10), _hand(1, 0, 11, 10)])
    np.testing.assert_allclose(joint_box(joints[0]), [0, 0, 10, 10])
    s = stacked_confidence(np.array([0.9, 0.9]), joints)
    assert s.iou == pytest.approx(90 / 110)
    assert s.factor == pytest.approx((0.85 - 90 / 110) / 0.35)
    np.testing.assert_allclose(s.confidence, 0.9 * s.factor)
    assert (s.confidence < 0.3).all()   # no longer valid at the default min_confidence


def test_the_ramp():
    assert stacked_factor(0.0) == 1.0 and stacked_factor(0.5) == 1.0
    assert stacked_factor(0.675) == pytest.approx(0.5)
    assert stacked_factor(0.85) == 0.0 and stacked_factor(1.0) == 0.0
    with pytest.raises(ValueError):
        stacked_factor(0.5, start=0.8, full=0.8)


def test_hands_apart_or_unknown_keep_their_confidence():
    apart = np.stack([_hand(0, 0, 10, 10), _hand(8, 0, 18, 10)])   # IoU 20 / 180
    assert box_iou(joint_box(apart[0]), joint_box(apart[1])) == pytest.approx(20 / 180)
    np.testing.assert_allclose(stacked_confidence(np.array([0.9, 0.4]), apart).confidence, [0.9, 0.4])
    unknown = apart.copy()
    unknown[1, 0, 0] = np.nan
    s = stacked_confidence(np.array([0.9, 0.4]), unknown)
    assert s.factor == 1.0 and np.isnan(s.iou) and s.report() == {"iou": None, "factor": 1.0}
