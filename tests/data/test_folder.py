import numpy as np
import pytest
from PIL import Image

from gensynth.data import folder


def _save(path, arr):
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(arr).save(path)


def test_loads_classes_in_order(tmp_path):
  _save(tmp_path / 'b' / '1.png', np.full((6, 5, 3), 200, np.uint8))
  _save(tmp_path / 'a' / '2.png', np.full((6, 5, 3), 10, np.uint8))
  _save(tmp_path / 'a' / '1.png', np.full((6, 5, 3), 20, np.uint8))
  images, labels, classes = folder.load_image_folder(str(tmp_path))
  assert classes == ['a', 'b']
  assert images.shape == (3, 6, 5, 3)
  np.testing.assert_array_equal(labels, [0, 0, 1])
  np.testing.assert_array_equal(images[:, 0, 0, 0], [20, 10, 200])


def test_grey_images_get_a_channel(tmp_path):
  _save(tmp_path / 'c' / 'x.png', np.zeros((4, 4), np.uint8))
  images, _, _ = folder.load_image_folder(str(tmp_path))
  assert images.shape == (1, 4, 4, 1)


def test_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match='does not exist'):
    folder.load_image_folder(str(tmp_path / 'missing'))
  with pytest.raises(ValueError, match='no class subfolders'):
    folder.load_image_folder(str(tmp_path))
  (tmp_path / 'empty').mkdir()
  with pytest.raises(ValueError, match='no image files'):
    folder.load_image_folder(str(tmp_path))


def test_mixed_sizes_and_channels(tmp_path):
  _save(tmp_path / 'a' / '1.png', np.zeros((4, 4, 3), np.uint8))
  _save(tmp_path / 'a' / '2.png', np.zeros((4, 5, 3), np.uint8))
  with pytest.raises(ValueError, match=r'2.png: shape \(4, 5, 3\).*differs'):
    folder.load_image_folder(str(tmp_path))
  (tmp_path / 'a' / '2.png').unlink()
  _save(tmp_path / 'a' / '3.png', np.zeros((4, 4), np.uint8))
  with pytest.raises(ValueError, match=r'3.png: shape \(4, 4, 1\)'):
    folder.load_image_folder(str(tmp_path))


def test_corrupt_file(tmp_path):
  (tmp_path / 'a').mkdir()
  (tmp_path / 'a' / 'bad.png').write_bytes(b'not a png at all')
  with pytest.raises(ValueError, match='bad.png: cannot decode'):
    folder.load_image_folder(str(tmp_path))
