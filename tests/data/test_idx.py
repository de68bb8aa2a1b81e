import os

import numpy as np
import pytest

from gensynth.data import idx
from tests import helpers


@pytest.mark.parametrize('compress', [False, True])
def test_roundtrip(tmp_path, compress):
  arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
  path = str(tmp_path / 'x-idx3-ubyte')
  helpers.write_idx(path, arr, compress=compress)
  out = idx.read_idx(path + ('.gz' if compress else ''))
  np.testing.assert_array_equal(out, arr)


def test_split_loading(tmp_path):
  d = helpers.make_idx_dir(str(tmp_path / 'mnist'), n_train=10, n_test=4)
  images, labels = idx.load_idx_split(d, 'train')
  assert images.shape == (10, 28, 28, 1) and images.dtype == np.uint8
  assert labels.shape == (10,) and labels.dtype == np.int32
  assert idx.load_idx_split(d, 'test')[0].shape == (4, 28, 28, 1)


def test_wrong_magic(tmp_path):
  path = tmp_path / 'bad'
  path.write_bytes(b'\x12\x34\x08\x03' + b'\0' * 20)
  with pytest.raises(ValueError, match='magic number 12340803'):
    idx.read_idx(str(path))


def test_truncated(tmp_path):
  path = str(tmp_path / 'img')
  helpers.write_idx(path, np.zeros((5, 4, 4), np.uint8))
  with open(path, 'rb') as f:
    data = f.read()
  with open(path, 'wb') as f:
    f.write(data[:-7])
  with pytest.raises(ValueError, match=r'truncated.*shape \(5, 4, 4\)'):
    idx.read_idx(path)


def test_truncated_gzip(tmp_path):
  path = str(tmp_path / 'img')
  helpers.write_idx(path, np.zeros((50, 8, 8), np.uint8), compress=True)
  data = open(path + '.gz', 'rb').read()
  open(path + '.gz', 'wb').write(data[:len(data) // 2])
  with pytest.raises(ValueError, match='img.gz'):
    idx.read_idx(path + '.gz')


def test_missing_directory_and_file(tmp_path):
  with pytest.raises(FileNotFoundError, match='does not exist'):
    idx.load_idx_split(str(tmp_path / 'nope'), 'train')
  d = helpers.make_idx_dir(str(tmp_path / 'm'))
  os.remove(os.path.join(d, 't10k-labels-idx1-ubyte.gz'))
  with pytest.raises(FileNotFoundError, match='t10k-labels-idx1-ubyte'):
    idx.load_idx_split(d, 'test')


def test_label_count_mismatch(tmp_path):
  d = str(tmp_path)
  helpers.write_idx(os.path.join(d, 'train-images-idx3-ubyte'),
                    np.zeros((5, 4, 4), np.uint8))
  helpers.write_idx(os.path.join(d, 'train-labels-idx1-ubyte'),
                    np.zeros(4, np.uint8))
  with pytest.raises(ValueError, match='4 labels for 5 images'):
    idx.load_idx_split(d, 'train')
