import cv2
import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import skimage.data
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from gensynth.synth import pyramid

SIZES = [(37, 50), (64, 64), (5, 3), (2, 2), (1, 7)]


@pytest.mark.parametrize('hw', SIZES)
def test_pyr_down_matches_opencv(hw):
  if min(hw) < 2:
    with pytest.raises(ValueError, match='at least 2x2'):
      pyramid.pyr_down(np.zeros(hw + (3,), np.float32))
    return
  x = np.random.default_rng(0).random(hw + (3,)).astype(np.float32)
  np.testing.assert_allclose(jax.jit(pyramid.pyr_down)(x), cv2.pyrDown(x),
                             atol=1e-6)


@pytest.mark.parametrize('hw,out', [((19, 25), (37, 50)), ((32, 32), None),
                                    ((3, 2), (5, 4)), ((1, 4), (2, 7))])
def test_pyr_up_matches_opencv(hw, out):
  x = np.random.default_rng(1).random(hw + (3,)).astype(np.float32)
  dst = out or (2 * hw[0], 2 * hw[1])
  ref = cv2.pyrUp(x, dstsize=dst[::-1])
  ref = ref.reshape(dst + (3,))
  np.testing.assert_allclose(pyramid.pyr_up(x, out), ref, atol=1e-6)


def test_pyr_up_rejects_impossible_size():
  with pytest.raises(ValueError, match='2n or 2n-1'):
    pyramid.pyr_up(np.zeros((4, 4, 1), np.float32), (10, 8))


def test_laplacian_matches_opencv_and_reconstructs():
  x = skimage.data.astronaut().astype(np.float32) / 255
  lap = jax.jit(pyramid.laplacian_pyramid, static_argnums=1)(x, 6)
  g = [x]
  for _ in range(5):
    g.append(cv2.pyrDown(g[-1]))
  ref = [a - cv2.pyrUp(b, dstsize=a.shape[1::-1]) for a, b in zip(g, g[1:])]
  for a, b in zip(lap, ref + [g[-1]]):
    np.testing.assert_allclose(a, b, atol=2e-6)
  np.testing.assert_allclose(pyramid.reconstruct(lap), x, atol=2e-6)


def test_batched_and_vmapped_agree():
  x = np.random.default_rng(2).random((3, 2, 24, 20, 1)).astype(np.float32)
  a = pyramid.laplacian_pyramid(x, 4)
  b = jax.vmap(jax.vmap(lambda im: pyramid.laplacian_pyramid(im, 4)))(x)
  for u, v in zip(a, b):
    np.testing.assert_allclose(u, v, atol=1e-6)


def test_levels_validated():
  with pytest.raises(ValueError, match=r'levels=9 impossible .* 1\.\.6'):
    pyramid.gaussian_pyramid(np.zeros((40, 33, 1), np.float32), 9)


@settings(max_examples=25, deadline=None)
@given(hnp.arrays(np.float32, st.tuples(st.integers(1, 40), st.integers(1, 40),
                                        st.sampled_from([1, 3, 4])),
                  elements=st.floats(0, 1, width=32)),
       st.integers(1, 6))
def test_reconstruction_is_exact_for_any_shape(x, levels):
  if levels > pyramid.max_levels(x.shape[:2]):
    with pytest.raises(ValueError, match='levels='):
      pyramid.laplacian_pyramid(x, levels)
    return
  lap = pyramid.laplacian_pyramid(x, levels)
  assert [b.shape[:2] for b in lap][0] == x.shape[:2]
  np.testing.assert_allclose(pyramid.reconstruct(lap), x, atol=1e-5)


def test_uint8_input_is_scaled_and_gradients_flow():
  x = (np.random.default_rng(3).random((16, 16, 3)) * 255).astype(np.uint8)
  np.testing.assert_allclose(pyramid.pyr_down(x),
                             cv2.pyrDown(x.astype(np.float32) / 255), atol=1e-6)
  g = jax.grad(lambda v: jnp.sum(pyramid.laplacian_pyramid(v, 3)[1]**2))(
      x.astype(np.float32) / 255)
  assert np.all(np.isfinite(g)) and np.any(g != 0)


def test_short_axes_as_matrices_equal_the_slice_form(monkeypatch):
  """Axes of at most DENSE_MAX samples, and of at most DENSE_WIDE in small
  arrays, are filtered by a matrix product: the same values as the
  strided-slice form, for lengths at the borders' special cases and both
  output lengths of an up step."""
  rng = np.random.default_rng(5)

  def all_three():  # a new function per setting: traced anew
    def fn(v):
      n = v.shape[1]
      return [pyramid.down_axis(v, 1), pyramid.up_axis(v, -2, 2 * n),
              pyramid.up_axis(v, -2, 2 * n - 1)]
    return jax.jit(fn)

  for n in (1, 2, 3, 4, 5, 6, 7, 13, pyramid.DENSE_MAX, 33, 64, 127,
            pyramid.DENSE_WIDE):
    x = rng.random((3, n, 2)).astype(np.float32)
    monkeypatch.setattr(pyramid, 'DENSE_MAX', 32)
    monkeypatch.setattr(pyramid, 'DENSE_WIDE', 128)
    dense = all_three()(x)
    monkeypatch.setattr(pyramid, 'DENSE_MAX', 0)
    monkeypatch.setattr(pyramid, 'DENSE_WIDE', 0)
    sliced = all_three()(x)
    for d, s in zip(dense, sliced):
      np.testing.assert_allclose(d, s, atol=3e-7, err_msg=f'n={n}')
  monkeypatch.setattr(pyramid, 'DENSE_MAX', 32)
  monkeypatch.setattr(pyramid, 'DENSE_WIDE', 128)
  # Integer input is filtered in float32, as the slice form promotes it.
  ints = np.arange(20, dtype=np.int32).reshape(5, 4, 1)
  assert pyramid.down_axis(ints, 0).dtype == jnp.float32


def test_wide_axes_are_matrices_only_in_small_arrays():
  """A 100-sample axis is one matrix product in a small image (bounded
  cost), and strided slices in a long strip, where a matrix would cost
  50 multiply-adds per sample."""
  def dots(shape):
    text = jax.jit(lambda v: pyramid.down_axis(v, 0)).lower(
        jnp.zeros(shape, jnp.float32)).as_text()
    return text.count('dot_general')

  assert dots((100, 64, 3)) == 1  # 19,200 elements
  assert dots((100, 2000, 3)) == 0  # 600,000 elements
  assert dots((20, 2000, 3)) == 1  # short axes: always a matrix
