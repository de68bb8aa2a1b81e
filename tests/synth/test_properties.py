"""Property tests: any shape/dtype/channel count gives a finite, correctly
shaped result or a ValueError naming the argument; never an XLA crash."""

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from gensynth.metrics import image as metrics
from gensynth.synth import blend
from gensynth.synth import features
from gensynth.synth import fusion
from gensynth.synth import pyramid

DTYPES = [np.uint8, np.uint16, np.float16, np.float32, np.float64, np.int32]


@st.composite
def images(draw, n=1):
  dtype = draw(st.sampled_from(DTYPES))
  shape = (draw(st.integers(0, 24)), draw(st.integers(0, 24)),
           draw(st.sampled_from([1, 2, 3, 4])))
  if np.issubdtype(dtype, np.integer):
    hi = np.iinfo(dtype).max if dtype != np.int32 else 1000
    elems = st.integers(0, hi)
  else:
    width = np.dtype(dtype).itemsize * 8
    # Mostly valid pixels, sometimes NaN or Inf ones.
    elems = st.one_of(st.floats(0, 1, width=width),
                      st.sampled_from([np.nan, np.inf, -np.inf]))
    if draw(st.booleans()):
      elems = st.floats(0, 1, width=width)
  return [draw(hnp.arrays(dtype, shape, elements=elems)) for _ in range(n)]


def _ok_or_value_error(fn, expected_shape=None):
  try:
    out = fn()
  except ValueError as e:
    assert str(e)  # a message, naming what was wrong
    return
  out = np.asarray(out, np.float64)
  assert np.all(np.isfinite(out))
  if expected_shape is not None:
    assert out.shape == expected_shape


@settings(max_examples=10, deadline=None)
@given(images(n=2), st.integers(1, 4))
def test_blends(xs, levels):
  a, b = xs
  _ok_or_value_error(lambda: blend.weighted_blend([a, b], [0.5, 0.5]),
                     a.shape)
  m = np.full(a.shape[:2], 0.5, np.float32)
  _ok_or_value_error(lambda: blend.multiband_blend(
      [a, b], blend.two_image_masks(m), levels=levels), a.shape)
  _ok_or_value_error(lambda: pyramid.laplacian_pyramid(a, levels)[0], a.shape)


@settings(max_examples=8, deadline=None)
@given(images(n=2))
def test_metrics_and_features(xs):
  a, b = xs
  _ok_or_value_error(lambda: metrics.psnr(a, b), ())
  _ok_or_value_error(lambda: metrics.ssim(a, b), ())
  _ok_or_value_error(lambda: metrics.qabf(a, b, a), ())
  _ok_or_value_error(lambda: metrics.mutual_information(a, b, a), ())
  _ok_or_value_error(lambda: features.sobel(a)[0], a.shape)
  _ok_or_value_error(lambda: fusion.multifocus_fusion([a, b], levels=2),
                     a.shape)


def test_error_names_argument():
  bad = np.ones((8, 8, 3), np.float32)
  bad[2, 3, 1] = np.nan
  with pytest.raises(ValueError, match=r'images\[1\]: holds NaN or Inf'):
    blend.weighted_blend([np.ones_like(bad), bad], [1, 1])
  with pytest.raises(ValueError, match=r'b: holds NaN or Inf'):
    metrics.ssim(np.ones((16, 16, 1)), np.full((16, 16, 1), np.inf))
  with pytest.raises(ValueError, match=r'images\[1\]: dtype int32'):
    blend.weighted_blend([np.zeros((4, 4, 3), np.float32),
                          np.zeros((4, 4, 3), np.int32)], [1, 1])
  with pytest.raises(ValueError, match=r'x: expected an image'):
    pyramid.pyr_down(np.zeros((4, 4), np.float32))
