import jax
import numpy as np
import pytest

from gensynth.synth import stitch


def test_hconcat_is_side_by_side():
  a = np.zeros((4, 3, 1), np.float32)
  b = np.ones((4, 5, 1), np.float32)
  out = stitch.hconcat([a, b])
  assert out.shape == (4, 8, 1)
  np.testing.assert_array_equal(out[:, 3:], 1)


def test_pad_alignment_and_spacing():
  a = np.ones((2, 2, 1), np.float32)
  b = np.ones((4, 2, 1), np.float32)
  for align, rows in (('start', [0, 1]), ('center', [1, 2]), ('end', [2, 3])):
    out = np.asarray(stitch.hconcat([a, b], policy='pad', align=align,
                                    spacing=1, fill=0.5))
    assert out.shape == (4, 5, 1)
    np.testing.assert_array_equal(np.where(out[:, 0, 0] == 1)[0], rows)
    np.testing.assert_array_equal(out[:, 2, 0], 0.5)


def test_resize_policy_keeps_aspect():
  a = np.ones((10, 20, 3), np.float32)
  b = np.ones((5, 5, 3), np.float32)
  out = stitch.hconcat([a, b], policy='resize')
  assert out.shape == (10, 30, 3)
  assert stitch.vconcat([a, b], policy='resize').shape == (10 + 20, 20, 3)


def test_grid_and_errors():
  imgs = [np.full((3, 4, 1), i, np.float32) for i in range(5)]
  g = jax.jit(lambda *x: stitch.grid(list(x), cols=2))(*imgs)
  assert g.shape == (9, 8, 1)
  np.testing.assert_array_equal(g[6:, 4:], 0)  # empty last cell
  with pytest.raises(ValueError, match='heights differ'):
    stitch.hconcat([imgs[0], np.zeros((2, 4, 1))])
  with pytest.raises(ValueError, match="policy='crop'"):
    stitch.hconcat(imgs, policy='crop')
  with pytest.raises(ValueError, match='channel counts must agree'):
    stitch.vconcat([imgs[0], np.zeros((3, 4, 3))])
