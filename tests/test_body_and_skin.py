"""Generator version 2: the body behind the hands (data/body.py) and the per-pixel skin cues
(data/skin_details.py) that make left and right tell-apart-able, on the real generator."""
import numpy as np
import pytest

from interhand_perception.data import body as B
from interhand_perception.data import skin_details as D
from interhand_perception.data import synthetic as S
from interhand_perception.data import textures as tx
from interhand_perception.data.appearance import model_info, rest_joints
from interhand_perception.data.scene import hand_rotation, sample_scene
from interhand_perception.hand_model.joints import SIDES


@pytest.fixture(scope="module")
def models():
    return S.load_models()


def test_elbow_has_both_link_lengths():
    shoulder, wrist = np.array([-0.18, 0.0, 0.0]), np.array([-0.05, 0.3, 0.35])
    for swivel in (-0.5, 0.0, 0.7):
        e = B.elbow_position(shoulder, wrist, 0.3, 0.26, "left", swivel)
        assert np.linalg.norm(e - shoulder) == pytest.approx(0.3, abs=1e-9)
        assert np.linalg.norm(e - wrist) == pytest.approx(0.26, abs=1e-9)
    e = B.elbow_position(shoulder, wrist, 0.3, 0.26, "left", 0.0)
    assert e[1] > 0.0 and e[0] < shoulder[0] + 0.05  # hangs down, not towards the midline


def test_forearm_frame_handshake_supination_and_mirror():
    u = np.array([0.0, 0.0, -1.0])  # forearm pointing forward (wrist -> elbow is backwards)
    n, f = B.forearm_hand_frame(u, "right", 0.0, 0.0, 0.0)
    np.testing.assert_allclose(n, [-1, 0, 0], atol=1e-12)  # palm to the midline
    np.testing.assert_allclose(f, [0, 0, 1], atol=1e-12)
    n, _ = B.forearm_hand_frame(u, "right", np.pi / 2, 0.0, 0.0)
    np.testing.assert_allclose(n, [0, -1, 0], atol=1e-12)  # supinated: palm up (y is down)
    nl, fl = B.forearm_hand_frame(u, "left", np.pi / 3, 0.2, 0.1)
    nr, fr = B.forearm_hand_frame(u, "right", np.pi / 3, 0.2, 0.1)
    mirror = np.array([-1.0, 1.0, 1.0])
    np.testing.assert_allclose(nl, nr * mirror, atol=1e-12)
    np.testing.assert_allclose(fl, fr * mirror, atol=1e-12)
    # thumb up in the handshake posture, for both sides (rotation's z column is the thumb side)
    for side in SIDES:
        n, f = B.forearm_hand_frame(u, side, 0.0, 0.0, 0.0)
        np.testing.assert_allclose(hand_rotation(n, f, side)[:, 2], [0, -1, 0], atol=1e-12)


def test_look_at_maps_target_onto_the_optical_axis():
    eye, target = np.array([0.1, -0.3, 0.8]), np.array([0.0, 0.25, 0.35])
    R = B.look_at(eye, target, 0.3)
    np.testing.assert_allclose(R.T @ R, np.eye(3), atol=1e-12)
    assert np.linalg.det(R) == pytest.approx(1.0)
    p = R.T @ (target - eye)
    np.testing.assert_allclose(p[:2], 0.0, atol=1e-12)
    assert p[2] > 0


def test_body_scenes_keep_sides_and_views(models):
    """Egocentric views show the left hand on the image's left, third-person views mostly on
    the right; the forearm leaves each wrist away from the other hand's side; crossing is rare."""
    cfg = S.SyntheticConfig(img_size=64)
    left_of = {"egocentric": [], "third_person": []}
    for i in range(60):
        sc = sample_scene(S.sample_rng("train", i, 0, 2), cfg, models)
        assert sc.view in left_of and sc.arm_dirs.shape == (2, 3)
        np.testing.assert_allclose(np.linalg.norm(sc.arm_dirs, axis=1), 1.0, atol=1e-9)
        uv = sc.joints[..., :2] / sc.joints[..., 2:]
        left_of[sc.view].append(uv[0, :, 0].mean() < uv[1, :, 0].mean())
    assert np.mean(left_of["egocentric"]) > 0.75
    assert np.mean(left_of["third_person"]) < 0.5


def test_version_1_still_available_and_different(models):
    a = S.generate_sample(3, "test", S.SyntheticConfig(img_size=32, version=1), models)
    b = S.generate_sample(3, "test", S.SyntheticConfig(img_size=32, version=2), models)
    assert not np.allclose(a["joints3d"], b["joints3d"])
    with pytest.raises(ValueError, match="version"):
        S.generate_sample(0, "train", S.SyntheticConfig(img_size=32, version=7), models)


@pytest.mark.parametrize("t", np.linspace(0.0, 1.0, 9))
def test_palm_differs_from_back_on_every_skin_tone(t):
    """The palm/back colour cue must survive on the lightest skin (it vanished in version 1):
    at least 6% apart in red/green ratio or in luminance."""
    skin = tx.skin_tone(t)
    palm, back = D.palm_colour(skin), D.back_colour(skin)
    rb = (palm[0] / palm[1]) / (back[0] / back[1]) - 1.0
    lum = lambda c: float(c @ [0.2126, 0.7152, 0.0722])  # noqa: E731
    dl = lum(palm) / lum(back) - 1.0
    assert max(abs(rb), abs(dl)) > 0.06, (t, rb, dl)


def test_details_land_on_the_right_side(models):
    """Creases lie on the palm, nails on the back of the distal bones, for both hands (the left
    is evaluated in its mirrored rest frame)."""
    for m in models:
        info = model_info(m)
        p, n = info.rest * info.mirror, info.rest_normals * info.mirror
        geo = info.details
        crease = D.crease_map(p, geo, width=0.003)
        plate, _ = D.nail_map(p, np.clip((n[:, 1] - 0.25) / 0.35, 0, 1), geo)
        assert crease.max() > 0.5 and plate.max() > 0.5
        assert n[plate > 0.5, 1].min() > 0.25  # nails face the back (+y)
        j = rest_joints(m) * info.mirror
        tips = j[[4, 8, 12, 16, 20]]
        near_tip = np.linalg.norm(p[plate > 0.5][:, None] - tips[None], axis=2).min(1)
        assert near_tip.max() < 0.02


def test_version_2_pixels_tell_palm_from_back(models):
    """Rendered with one light for the whole hand, the palm side of a light-skinned hand is
    measurably redder than its back (the cue a network can learn)."""
    info = model_info(models[1])
    rng = np.random.default_rng(0)
    skin = tx.skin_tone(0.05)
    alb = D.detailed_albedo(info.rest, info.rest_normals, skin, info.details, rng)
    palm = info.rest_normals[:, 1] < -0.6
    back = info.rest_normals[:, 1] > 0.6
    ratio = lambda a: float(np.median(a[:, 0] / a[:, 1]))  # noqa: E731
    assert ratio(alb[palm]) > 1.08 * ratio(alb[back])
