"""Chumpy-free loader for the official MANO hand model files (``MANO_RIGHT.pkl``/``MANO_LEFT.pkl``).

The official files are Python-2 pickles holding ``chumpy`` objects (which no longer import with
numpy >= 1.24 / Python >= 3.11) and a ``scipy.sparse`` joint regressor. This module unpickles
them with a restricted unpickler that

* maps every ``chumpy.*`` class to a stand-in that only records the pickled state, later
  turned into a numpy array (a plain ``Ch`` keeps its array under the state key ``'x'``; a few
  derived objects such as ``Select``/``Reshape`` are recomputed from their operands),
* maps every ``scipy.sparse.*`` class to a stand-in rebuilt densely from its pickled
  ``data``/``indices``/``indptr``/``_shape`` (csc or csr) or ``row``/``col`` (coo) fields,
* maps the numpy 1 module paths (``numpy.core.*``) to the numpy 2 ones (``numpy._core.*``),
* refuses any other global, so a file that is not a MANO model cannot run code.

Neither chumpy nor scipy is imported. MANO is licence-gated (https://mano.is.tue.mpg.de,
non-commercial): this project never ships or downloads it.
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, Union

import numpy as np

from .joints import MANO_TIP_VERTEX_IDS, NUM_SKIN_JOINTS
from .model_data import HandModelData

PathLike = Union[str, Path]

MANO_FILE_NAMES = {"right": "MANO_RIGHT.pkl", "left": "MANO_LEFT.pkl"}
REQUIRED_KEYS = ("v_template", "f", "shapedirs", "posedirs", "J_regressor", "weights",
                 "kintree_table", "hands_components", "hands_mean")
MANO_REGISTRATION_URL = "https://mano.is.tue.mpg.de"

_NUMPY2 = int(np.__version__.split(".")[0]) >= 2
_BUILTIN_NAMES = frozenset({"object", "set", "frozenset", "slice", "complex", "list", "dict",
                            "tuple", "bytearray", "bytes", "int", "long", "float", "bool",
                            "str", "unicode"})
_SAFE_GLOBALS = {
    "copy_reg": frozenset({"_reconstructor"}),
    "copyreg": frozenset({"_reconstructor", "__newobj__"}),
    "__builtin__": _BUILTIN_NAMES,
    "builtins": _BUILTIN_NAMES,
    "_codecs": frozenset({"encode"}),
    "collections": frozenset({"OrderedDict"}),
    "numpy": frozenset({"ndarray", "dtype"}),
    "numpy.core.multiarray": frozenset({"_reconstruct", "scalar"}),
    "numpy._core.multiarray": frozenset({"_reconstruct", "scalar"}),
    "numpy.core.numeric": frozenset({"_frombuffer"}),
    "numpy._core.numeric": frozenset({"_frombuffer"}),
}


class PickledStandIn:
    """Stand-in for a class that is not imported: records constructor args and pickled state.

    Subclasses are created per pickled class name; ``source_class`` holds ``"module.Name"``.
    """

    source_class = "?"
    args: tuple = ()
    state: Any = None

    def __new__(cls, *args: Any, **kwargs: Any) -> "PickledStandIn":
        obj = object.__new__(cls)
        obj.args = args
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args or self.args
        if kwargs:
            self.state = kwargs

    def __setstate__(self, state: Any) -> None:
        # Default pickling gives a dict, or (dict, slots dict) for classes with __slots__.
        if isinstance(state, tuple) and len(state) == 2 and all(
                s is None or isinstance(s, dict) for s in state):
            state = {**(state[0] or {}), **(state[1] or {})}
        self.state = state

    def __repr__(self) -> str:
        keys = sorted(self.state) if isinstance(self.state, dict) else type(self.state).__name__
        return f"<stand-in for {self.source_class}: {keys}>"


class ChumpyStandIn(PickledStandIn):
    """Stand-in for any ``chumpy`` object."""


class SparseStandIn(PickledStandIn):
    """Stand-in for a ``scipy.sparse`` matrix or array."""


def _state_item(obj: PickledStandIn, key: str) -> Any:
    """``obj.state[key]`` or a ValueError naming the missing key and the stored ones."""
    state = obj.state if isinstance(obj.state, dict) else {}
    if key not in state:
        stored = sorted(state) if state else f"no dict state ({type(obj.state).__name__})"
        raise ValueError(f"cannot convert pickled {obj.source_class}: expected its data under key "
                         f"{key!r}, stored keys: {stored}")
    return state[key]


def sparse_to_dense(obj: SparseStandIn) -> np.ndarray:
    """Dense numpy array from the pickled state of a scipy sparse matrix (csc, csr or coo).

    Returns:
        (rows, cols) array with duplicate entries summed, like ``.toarray()``.
    """
    cls_name = obj.source_class.rsplit(".", 1)[-1]
    state = obj.state if isinstance(obj.state, dict) else {}
    fmt = state.get("format") or cls_name[:3]
    shape_key = "_shape" if "_shape" in state else "shape"
    shape = tuple(int(s) for s in _state_item(obj, shape_key))
    data = np.asarray(_state_item(obj, "data"))
    if fmt in ("csc", "csr"):
        indices = np.asarray(_state_item(obj, "indices"), dtype=np.int64)
        indptr = np.asarray(_state_item(obj, "indptr"), dtype=np.int64)
        outer = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
        rows, cols = (indices, outer) if fmt == "csc" else (outer, indices)
    elif fmt == "coo":
        rows = np.asarray(_state_item(obj, "row"), dtype=np.int64)
        cols = np.asarray(_state_item(obj, "col"), dtype=np.int64)
    else:
        raise ValueError(f"unsupported sparse format {fmt!r} of pickled {obj.source_class}")
    dense = np.zeros(shape, dtype=data.dtype)
    np.add.at(dense, (rows, cols), data)
    return dense


def _chumpy_operands(obj: ChumpyStandIn, *keys: str) -> list[np.ndarray]:
    return [to_numpy(_state_item(obj, k)) for k in keys]


def chumpy_to_numpy(obj: ChumpyStandIn) -> np.ndarray:
    """Numpy value of a pickled chumpy object.

    A plain ``Ch`` stores its array under ``'x'``. Derived objects store their operands but
    not their value; the reorderings (Select, Reshape, transpose) and elementwise arithmetic
    that can appear in model files are recomputed. Anything else raises a ValueError naming
    the class and the stored keys.
    """
    name = obj.source_class.rsplit(".", 1)[-1]
    state = obj.state if isinstance(obj.state, dict) else {}
    if name == "Select":
        (a,) = _chumpy_operands(obj, "a")
        out = a.ravel()[np.asarray(_state_item(obj, "idxs"))]
        return out.reshape(state["preferred_shape"]) if "preferred_shape" in state else out
    if name == "Reshape":
        (a,) = _chumpy_operands(obj, "a")
        return a.reshape(_state_item(obj, "newshape"))
    if name == "transpose":
        (a,) = _chumpy_operands(obj, "a")
        return np.transpose(a, state.get("axes"))
    binary = {"add": np.add, "subtract": np.subtract, "multiply": np.multiply, "dot": np.dot}
    if name in binary:
        return np.asarray(binary[name](*_chumpy_operands(obj, "a", "b")))
    if name == "divide":
        return np.asarray(np.divide(*_chumpy_operands(obj, "x1", "x2")))
    if name == "negative":
        return -_chumpy_operands(obj, "x")[0]
    if "x" in state:  # Ch and its plain subclasses
        return to_numpy(state["x"])
    if not state and len(obj.args) == 1:  # constructed from a positional array
        return to_numpy(obj.args[0])
    return to_numpy(_state_item(obj, "x"))  # raises, naming 'x' and the stored keys


def to_numpy(value: Any) -> np.ndarray:
    """Convert a value read from a MANO pickle (array, stand-in, number, list) to numpy."""
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, ChumpyStandIn):
        return chumpy_to_numpy(value)
    if isinstance(value, SparseStandIn):
        return sparse_to_dense(value)
    if isinstance(value, PickledStandIn):
        raise ValueError(f"cannot convert pickled {value.source_class} to an array")
    return np.asarray(value)


def _numpy_module(module: str) -> str:
    """Map numpy module paths between numpy 1 (``numpy.core``) and 2 (``numpy._core``)."""
    old, new = ("numpy.core", "numpy._core") if _NUMPY2 else ("numpy._core", "numpy.core")
    if module == old or module.startswith(old + "."):
        return new + module[len(old):]
    return module


def _is_safe_numpy_global(module: str, name: str) -> bool:
    """numpy scalar types (``numpy.float64``) and dtype classes (``numpy.dtypes.*DType``)."""
    if module == "numpy.dtypes":
        return name.endswith("DType")
    if module == "numpy":
        obj = getattr(np, name, None)
        return isinstance(obj, type) and issubclass(obj, np.generic)
    return False


class ManoUnpickler(pickle.Unpickler):
    """Restricted unpickler for MANO model files (see the module docstring)."""

    def __init__(self, file: Any, source: str = "<MANO pickle>") -> None:
        super().__init__(file, encoding="latin1")
        self.source = source
        self.stand_ins: dict[str, type] = {}

    def _stand_in(self, base: type, module: str, name: str) -> type:
        key = f"{module}.{name}"
        if key not in self.stand_ins:
            self.stand_ins[key] = type(name, (base,), {"source_class": key})
        return self.stand_ins[key]

    def find_class(self, module: str, name: str) -> Any:
        if module == "chumpy" or module.startswith("chumpy."):
            return self._stand_in(ChumpyStandIn, module, name)
        if module == "scipy.sparse" or module.startswith("scipy.sparse."):
            return self._stand_in(SparseStandIn, module, name)
        module = _numpy_module(module)
        if name in _SAFE_GLOBALS.get(module, ()) or _is_safe_numpy_global(module, name):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"{self.source}: refusing to load global '{module}.{name}'; a MANO model file only "
            "holds numpy arrays, chumpy objects and scipy.sparse matrices")


def read_mano_pickle(path: PathLike) -> dict[str, Any]:
    """Unpickle a MANO file without chumpy/scipy; chumpy and sparse values become numpy arrays.

    Returns:
        The file's dict; array-like values converted with :func:`to_numpy`, other values
        (strings such as ``bs_style``) unchanged.
    """
    path = Path(path)
    with path.open("rb") as fh:
        raw = ManoUnpickler(fh, source=str(path)).load()
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a pickled dict (MANO model), got {type(raw).__name__}")
    out = {}
    for key, value in raw.items():
        key = key.decode("latin1") if isinstance(key, bytes) else str(key)
        out[key] = to_numpy(value) if isinstance(value, (PickledStandIn, np.ndarray)) else value
    return out


def infer_side(path: PathLike) -> str:
    """"left" or "right" from a file name such as ``MANO_LEFT.pkl`` (ValueError if unclear)."""
    stem = Path(path).name.lower()
    found = [s for s in ("left", "right") if s in stem]
    if len(found) != 1:
        raise ValueError(f"cannot infer the hand side from file name {Path(path).name!r}; "
                         "pass side='left' or side='right'")
    return found[0]


def parents_from_kintree(kintree_table: np.ndarray) -> np.ndarray:
    """Parent indices from MANO's (2, J) kintree table (row 0 parent ids, row 1 joint ids).

    Returns:
        (J,) int64 parents, -1 for the root (stored as a huge uint32 in the official files).
    """
    table = np.asarray(kintree_table).astype(np.int64)
    column_of = {int(joint_id): col for col, joint_id in enumerate(table[1])}
    return np.array([column_of.get(int(p), -1) for p in table[0]], dtype=np.int64)


def load_mano_file(path: PathLike, side: str | None = None,
                   fix_left_shapedirs: bool = True) -> HandModelData:
    """Load an official MANO model file into a validated :class:`HandModelData`.

    Args:
        path: ``MANO_RIGHT.pkl`` or ``MANO_LEFT.pkl``.
        side: "left"/"right"; inferred from the file name when None.
        fix_left_shapedirs: negate the x component of the first shape direction of the left
            model (``shapedirs[:, 0, :] *= -1``), the known bug of the official left file.

    Returns:
        HandModelData with name "mano" and float64 arrays; extras hold ``source_path`` and,
        when present, ``J``, ``hands_coeffs``, ``bs_style``, ``bs_type``.
    """
    path = Path(path)
    inferred = infer_side(path) if side is None else side
    if inferred not in MANO_FILE_NAMES:
        raise ValueError(f"side must be 'left' or 'right', got {inferred!r}")
    if side is not None:
        named = [s for s in ("left", "right") if s in path.name.lower()]
        if len(named) == 1 and named[0] != side:
            raise ValueError(f"side={side!r} contradicts the file name {path.name!r}")
    raw = read_mano_pickle(path)
    missing = [k for k in REQUIRED_KEYS if k not in raw]
    if missing:
        raise ValueError(f"{path}: not a MANO model file, missing keys {missing}")

    def f64(key: str) -> np.ndarray:
        return np.array(to_numpy(raw[key]), dtype=np.float64)

    shapedirs = f64("shapedirs")
    if inferred == "left" and fix_left_shapedirs:
        shapedirs[:, 0, :] *= -1.0
    extras: dict[str, Any] = {"source_path": str(path)}
    for key in ("J", "hands_coeffs"):
        if key in raw:
            extras[key] = np.asarray(to_numpy(raw[key]))
    for key in ("bs_style", "bs_type"):
        if key in raw:
            extras[key] = raw[key]
    data = HandModelData(
        v_template=f64("v_template"),
        faces=np.asarray(to_numpy(raw["f"])).astype(np.int64),
        shapedirs=shapedirs,
        posedirs=f64("posedirs"),
        J_regressor=f64("J_regressor"),
        weights=f64("weights"),
        parents=parents_from_kintree(to_numpy(raw["kintree_table"]))[:NUM_SKIN_JOINTS],
        hands_components=f64("hands_components"),
        hands_mean=f64("hands_mean").reshape(-1),
        tip_vertex_ids=np.asarray(MANO_TIP_VERTEX_IDS, dtype=np.int64),
        side=inferred,
        name="mano",
        extras=extras,
    )
    return data.validate()


def find_mano_file(mano_dir: PathLike, side: str) -> Path:
    """Locate ``MANO_RIGHT.pkl``/``MANO_LEFT.pkl`` in ``mano_dir`` or ``mano_dir/models``.

    Raises:
        ValueError: unknown side.
        FileNotFoundError: with where it looked and how to obtain MANO.
    """
    if side not in MANO_FILE_NAMES:
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    name = MANO_FILE_NAMES[side]
    root = Path(mano_dir).expanduser()
    candidates = [root / name, root / "models" / name]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    looked = " and ".join(str(c) for c in candidates)
    raise FileNotFoundError(
        f"MANO {side} hand model not found: looked for {name} at {looked}. MANO is "
        f"licence-gated (non-commercial) and not shipped with this package: register at "
        f"{MANO_REGISTRATION_URL}, download the MANO models and pass the folder holding "
        f"{name} (or its parent with a models/ subfolder) as mano_dir. Omit mano_dir to use "
        "the built-in hand model instead.")
