"""Tests of the chumpy-free MANO loader on MANO-format pickles fabricated here.

The official files cannot be shipped (licence-gated), so the tests write pickles with the same
structure: chumpy ``Ch``/``Select`` objects (from stand-in modules registered under the chumpy
names only while pickling), a scipy-sparse joint regressor and numpy arrays, protocol 2.
"""
from __future__ import annotations

import importlib.util
import io
import pickle
import struct
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from interhand_perception.hand_model import load_hand_model, load_hand_model_data
from interhand_perception.hand_model.joints import MANO_TIP_VERTEX_IDS, SKIN_PARENTS
from interhand_perception.hand_model.mano_io import (ChumpyStandIn, SparseStandIn, find_mano_file,
                                                     load_mano_file, read_mano_pickle,
                                                     sparse_to_dense, to_numpy)

ROOT_MARKER = 4294967295  # the official kintree tables store the root's parent as uint32 max
FAKE_SPARSE_MODULE = "_fake_sparse_for_mano_test"


# ----------------------------------------------------------------------------- fabrication
class Ch:
    """Mimics chumpy.ch.Ch pickling: the array lives in the instance dict under 'x'."""

    def __init__(self, x):
        self.x = x
        self._dirty_vars = set()
        self._itr = None
        self._make_dense = False
        self._make_sparse = False
        self._depends_on_deps = {}


class Select(Ch):
    """Mimics chumpy.reordering.Select: operand 'a', flat 'idxs', 'preferred_shape'."""

    def __init__(self, a, idxs, preferred_shape):
        super().__init__(None)
        del self.x
        self.a, self.idxs, self.preferred_shape = a, idxs, preferred_shape


class OldSparse:
    """Mimics an old scipy csc/csr matrix's pickled dict (no 'format' key)."""

    def __init__(self, dense: np.ndarray, fmt: str):
        mat = dense if fmt == "csc" else dense.T  # compress columns (csc) or rows (csr)
        indices, indptr, data = [], [0], []
        for j in range(mat.shape[1]):
            rows = np.nonzero(mat[:, j])[0]
            indices.extend(rows.tolist())
            data.extend(mat[rows, j].tolist())
            indptr.append(len(indices))
        self._shape = dense.shape
        self.maxprint = 50
        self.indices = np.array(indices, dtype=np.int32)
        self.indptr = np.array(indptr, dtype=np.int32)
        self.data = np.array(data)


class OldCsc(OldSparse):
    pass


class OldCsr(OldSparse):
    pass


def _fake_module(name: str, **classes) -> types.ModuleType:
    mod = types.ModuleType(name)
    for cls_name, cls in classes.items():
        cls.__module__, cls.__qualname__ = name, cls_name
        setattr(mod, cls_name, cls)
    return mod


class Py2StylePickler(pickle._Pickler):
    """Writes bytes as Python-2 ``str`` opcodes, which Python 3 can only read with latin1."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str


def random_arrays(num_verts: int = 60, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    reg = rng.random((16, num_verts)) * (rng.random((16, num_verts)) < 0.2)
    reg[np.arange(16), np.arange(16)] += 1.0  # every row non-empty
    return {
        "v_template": rng.normal(scale=0.05, size=(num_verts, 3)),
        "f": rng.integers(0, num_verts, size=(2 * num_verts, 3)).astype(np.uint32),
        "shapedirs": rng.normal(scale=0.01, size=(num_verts, 3, 10)),
        "posedirs": rng.normal(scale=0.01, size=(num_verts, 3, 135)),
        "J_regressor": reg / reg.sum(1, keepdims=True),
        "weights": rng.dirichlet(np.full(16, 0.3), size=num_verts),
        "kintree_table": np.array([[ROOT_MARKER, *SKIN_PARENTS[1:]], list(range(16))],
                                  dtype=np.int64),
        "hands_components": rng.normal(size=(45, 45)),
        "hands_mean": rng.normal(scale=0.2, size=45),
        "hands_coeffs": rng.normal(size=(7, 45)),
        "J": rng.normal(size=(16, 3)),
    }


def write_mano_pickle(path: Path, arrays: dict, sparse: str = "old_csc",
                      py2: bool = False) -> bytes:
    """Pickle ``arrays`` like an official MANO file; chumpy stand-ins exist only meanwhile."""
    assert "chumpy" not in sys.modules
    fakes = {"chumpy": _fake_module("chumpy"), "chumpy.ch": _fake_module("chumpy.ch", Ch=Ch),
             "chumpy.reordering": _fake_module("chumpy.reordering", Select=Select),
             FAKE_SPARSE_MODULE: _fake_module(FAKE_SPARSE_MODULE, csc_matrix=OldCsc,
                                              csr_matrix=OldCsr)}
    model = dict(arrays)
    model["shapedirs"] = Ch(arrays["shapedirs"])
    model["weights"] = Ch(arrays["weights"])
    posedirs = arrays["posedirs"]
    model["posedirs"] = Select(Ch(posedirs.ravel()[::-1].copy()),
                               np.arange(posedirs.size)[::-1], posedirs.shape)
    if sparse.startswith("old_"):
        fmt = sparse[4:]
        model["J_regressor"] = (OldCsc if fmt == "csc" else OldCsr)(arrays["J_regressor"], fmt)
    elif sparse == "scipy":
        import scipy.sparse

        model["J_regressor"] = scipy.sparse.csc_matrix(arrays["J_regressor"])
    model["bs_style"], model["bs_type"] = "lbs", "lrotmin"
    try:
        sys.modules.update(fakes)
        buf = io.BytesIO()
        (Py2StylePickler if py2 else pickle.Pickler)(buf, protocol=2).dump(model)
    finally:
        for name in fakes:
            sys.modules.pop(name, None)
    raw = buf.getvalue()
    for fmt in ("csc", "csr"):  # the module path of old scipy versions
        raw = raw.replace(f"{FAKE_SPARSE_MODULE}\n{fmt}_matrix\n".encode(),
                          f"scipy.sparse.{fmt}\n{fmt}_matrix\n".encode())
    if py2:  # numpy 1 module paths, as in files written long ago
        raw = raw.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
    path.write_bytes(raw)
    return raw


@pytest.fixture(autouse=True)
def no_chumpy():
    assert importlib.util.find_spec("chumpy") is None or "chumpy" not in sys.modules
    yield
    assert "chumpy" not in sys.modules


# ----------------------------------------------------------------------------- tests
def check_equal(data, arrays, side="right"):
    np.testing.assert_array_equal(data.v_template, arrays["v_template"])
    np.testing.assert_array_equal(data.faces, arrays["f"].astype(np.int64))
    assert data.faces.dtype == np.int64
    np.testing.assert_array_equal(data.posedirs, arrays["posedirs"])
    np.testing.assert_allclose(data.J_regressor, arrays["J_regressor"], rtol=0, atol=1e-15)
    np.testing.assert_array_equal(data.weights, arrays["weights"])
    np.testing.assert_array_equal(data.hands_components, arrays["hands_components"])
    np.testing.assert_array_equal(data.hands_mean, arrays["hands_mean"])
    assert data.parents.tolist() == list(SKIN_PARENTS) and data.parents[0] == -1
    assert data.tip_vertex_ids.tolist() == list(MANO_TIP_VERTEX_IDS)
    assert data.name == "mano" and data.side == side
    np.testing.assert_array_equal(data.extras["J"], arrays["J"])
    np.testing.assert_array_equal(data.extras["hands_coeffs"], arrays["hands_coeffs"])
    assert data.extras["bs_style"] == "lbs"


@pytest.mark.parametrize("sparse", ["old_csc", "old_csr", "scipy", "dense"])
def test_load_right_model(tmp_path, sparse):
    if sparse == "scipy" and importlib.util.find_spec("scipy") is None:
        pytest.skip("scipy not installed: the old-path sparse cases cover the stand-in")
    arrays = random_arrays()
    raw = write_mano_pickle(tmp_path / "MANO_RIGHT.pkl", arrays, sparse=sparse)
    assert b"chumpy.ch\nCh\n" in raw and b"chumpy.reordering\nSelect\n" in raw
    if sparse.startswith("old_"):
        fmt = sparse[4:]
        assert f"scipy.sparse.{fmt}\n{fmt}_matrix\n".encode() in raw
    data = load_mano_file(tmp_path / "MANO_RIGHT.pkl")
    check_equal(data, arrays)
    np.testing.assert_array_equal(data.shapedirs, arrays["shapedirs"])


def test_left_model_shapedirs_fix_and_side_inference(tmp_path):
    arrays = random_arrays(seed=1)
    write_mano_pickle(tmp_path / "MANO_LEFT.pkl", arrays)
    data = load_mano_file(tmp_path / "MANO_LEFT.pkl")
    check_equal(data, arrays, side="left")
    np.testing.assert_array_equal(data.shapedirs[:, 0, :], -arrays["shapedirs"][:, 0, :])
    np.testing.assert_array_equal(data.shapedirs[:, 1:, :], arrays["shapedirs"][:, 1:, :])
    raw = load_mano_file(tmp_path / "MANO_LEFT.pkl", side="left", fix_left_shapedirs=False)
    np.testing.assert_array_equal(raw.shapedirs, arrays["shapedirs"])
    with pytest.raises(ValueError, match="contradicts"):
        load_mano_file(tmp_path / "MANO_LEFT.pkl", side="right")
    (tmp_path / "hand.pkl").write_bytes((tmp_path / "MANO_LEFT.pkl").read_bytes())
    with pytest.raises(ValueError, match="side="):
        load_mano_file(tmp_path / "hand.pkl")
    assert load_mano_file(tmp_path / "hand.pkl", side="left").side == "left"


def test_py2_latin1_strings_and_numpy1_paths(tmp_path):
    arrays = random_arrays(seed=2)
    raw = write_mano_pickle(tmp_path / "MANO_RIGHT.pkl", arrays, py2=True)
    assert b"numpy.core.multiarray" in raw and b"_codecs" not in raw
    data = load_mano_file(tmp_path / "MANO_RIGHT.pkl")
    check_equal(data, arrays)
    # The array bytes are Python-2 str opcodes: the default ASCII decoding cannot read them.
    buf = io.BytesIO()
    Py2StylePickler(buf, protocol=2).dump(arrays["v_template"])
    with pytest.raises(UnicodeDecodeError):
        pickle.loads(buf.getvalue())


def test_read_mano_pickle_and_refusals(tmp_path):
    arrays = random_arrays(seed=3)
    write_mano_pickle(tmp_path / "MANO_RIGHT.pkl", arrays)
    raw = read_mano_pickle(tmp_path / "MANO_RIGHT.pkl")
    assert isinstance(raw["shapedirs"], np.ndarray) and isinstance(raw["J_regressor"], np.ndarray)
    assert raw["bs_type"] == "lrotmin"
    # Globals outside numpy/chumpy/scipy.sparse are refused (never imported or called).
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps({"v_template": Path.cwd}, protocol=2))
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        read_mano_pickle(tmp_path / "evil.pkl")
    (tmp_path / "MANO_LEFT.pkl").write_bytes(pickle.dumps({"v_template": np.zeros((3, 3))}))
    with pytest.raises(ValueError, match="missing keys"):
        load_mano_file(tmp_path / "MANO_LEFT.pkl")


def test_stand_in_conversion_errors():
    weird = type("Weird", (ChumpyStandIn,), {"source_class": "chumpy.ch.Weird"})()
    weird.__setstate__({"foo": 1})
    with pytest.raises(ValueError, match="'x'.*foo"):
        to_numpy(weird)
    plain = type("Ch", (ChumpyStandIn,), {"source_class": "chumpy.ch.Ch"})()
    plain.__setstate__(({"x": np.arange(3.0)}, None))  # (dict, slots) form
    np.testing.assert_array_equal(to_numpy(plain), np.arange(3.0))
    neg = type("negative", (ChumpyStandIn,), {"source_class": "chumpy.ch_ops.negative"})()
    neg.__setstate__({"x": plain})
    np.testing.assert_array_equal(to_numpy(neg), -np.arange(3.0))
    sparse = type("csc_matrix", (SparseStandIn,), {"source_class": "scipy.sparse.csc.csc_matrix"})()
    sparse.__setstate__({"_shape": (2, 2), "data": np.ones(1), "indices": np.zeros(1)})
    with pytest.raises(ValueError, match="'indptr'"):
        sparse_to_dense(sparse)
    coo = type("coo_matrix", (SparseStandIn,), {"source_class": "scipy.sparse.coo.coo_matrix"})()
    coo.__setstate__({"_shape": (2, 3), "data": np.array([1.0, 2.0, 3.0]),
                      "row": np.array([0, 1, 1]), "col": np.array([2, 0, 0])})
    np.testing.assert_array_equal(sparse_to_dense(coo), [[0, 0, 1], [5, 0, 0]])


def test_find_mano_file(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "MANO_RIGHT.pkl").write_bytes(b"")
    assert find_mano_file(tmp_path, "right") == tmp_path / "models" / "MANO_RIGHT.pkl"
    assert find_mano_file(tmp_path / "models", "right") == tmp_path / "models" / "MANO_RIGHT.pkl"
    (tmp_path / "MANO_RIGHT.pkl").write_bytes(b"")
    assert find_mano_file(tmp_path, "right") == tmp_path / "MANO_RIGHT.pkl"
    with pytest.raises(FileNotFoundError) as err:
        find_mano_file(tmp_path / "nowhere", "left")
    msg = str(err.value)
    for part in ("MANO_LEFT.pkl", str(tmp_path / "nowhere"), "licence", "mano.is.tue.mpg.de",
                 "built-in", "mano_dir"):
        assert part in msg, part
    with pytest.raises(ValueError, match="side"):
        find_mano_file(tmp_path, "both")
    with pytest.raises(FileNotFoundError, match="mano.is.tue.mpg.de"):
        load_hand_model_data("left", mano_dir=tmp_path / "nowhere")


def test_load_hand_model_from_mano_dir(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    for side, seed in (("right", 4), ("left", 5)):
        write_mano_pickle(models / f"MANO_{side.upper()}.pkl", random_arrays(778, seed=seed))
    for side in ("right", "left"):
        model = load_hand_model(side, mano_dir=tmp_path)
        assert model.name == "mano" and model.side == side and model.num_verts == 778
        out = model(torch.zeros(2, 3), torch.randn(2, 10), torch.randn(2, 10))
        assert out.vertices.shape == (2, 778, 3) and torch.isfinite(out.joints).all()
        torch.testing.assert_close(out.joints[:, 4], out.vertices[:, MANO_TIP_VERTEX_IDS[0]])
