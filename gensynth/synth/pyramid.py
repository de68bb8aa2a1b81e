"""Gaussian and Laplacian pyramids with OpenCV's conventions.

`pyr_down` equals cv2.pyrDown (5-tap [1, 4, 6, 4, 1]/16, reflect-101 borders,
output ceil(n/2)); `pyr_up` equals cv2.pyrUp (even outputs (1, 6, 1)/8, odd
(1, 1)/2; reflect-101 at the top/left border and replicate at the
bottom/right, which is what OpenCV's last-row/column rule amounts to). Both are
written polyphase with strided slices of the input, without padding copies,
because XLA:CPU runs the same filter as a depthwise lax.conv far slower
(`launch.benchmark --bench=pyramid_blend`).
Axes of at most `DENSE_MAX` samples (the coarse levels), and of at most
`DENSE_WIDE` in arrays of at most `DENSE_ELEMS` elements, are filtered by one
small matrix product instead: the same taps and borders, one operation
instead of a few dozen slices, so a full-depth pyramid compiles faster
(`launch.benchmark --bench=compile_latency`).
Reconstruction from a Laplacian pyramid is exact up to float rounding by
construction.
"""

import functools

import jax.numpy as jnp
import numpy as np
from jax import lax

from gensynth import errors
from gensynth.synth import checks
from gensynth.synth import compiled


_TAPS = (0.0625, 0.25, 0.375, 0.25, 0.0625)  # [1, 4, 6, 4, 1] / 16
DENSE_MAX = 32  # axes up to this length: one matrix product (see above)
# Axes up to DENSE_WIDE samples too, where the whole array has at most
# DENSE_ELEMS elements: the matrix costs out multiply-adds per element where
# the slices cost about five, bounded here at 64 * 2^15 per call, and the
# few operations in place of a few dozen compile faster (BUILD_NOTES.md,
# "Start-up, compile latency and current JAX").
DENSE_WIDE = 128
DENSE_ELEMS = 2**15


def _dense_ok(x, n):
  """Whether an axis of n samples of x is filtered as a matrix product."""
  return 0 < n <= DENSE_MAX or (n <= DENSE_WIDE and x.size <= DENSE_ELEMS)


def _reflect101(j, n):
  """Index j reflected into [0, n) about the end samples (repeatedly, as
  OpenCV's borderInterpolate and np.pad(mode='reflect') do)."""
  if n == 1:
    return 0
  j %= 2 * (n - 1)
  return j if j < n else 2 * (n - 1) - j


def down_axis(x, axis):
  """cv2.pyrDown along one axis: ceil(n/2) outputs, reflect-101 borders.

  The interior is five strided slices of x itself; the first and last
  outputs, whose taps cross the border, are built from single reflected rows
  and concatenated on. Padding x first would copy all of it, and on XLA:CPU
  that copy costs more than the filtering (`--bench=pyramid_blend`).
  """
  x = jnp.asarray(x) if not hasattr(x, 'dtype') else x
  if not -x.ndim <= axis < x.ndim:
    raise errors.InputError(f'axis={axis} is out of range for x of shape '
                            f'{tuple(x.shape)}.')
  checks.finite(x, 'x')
  n = x.shape[axis]
  ax = axis % x.ndim
  m = (n + 1) // 2
  if _dense_ok(x, n):
    return _dense(x, ax, down_matrix(n))

  def row(j):
    j = _reflect101(j, n)
    return lax.slice_in_dim(x, j, j + 1, axis=ax)

  def edge(i):  # output i from reflected single rows
    return sum(w * row(2 * i + k - 2) for k, w in enumerate(_TAPS))

  if m <= 2:
    return jnp.concatenate([edge(i) for i in range(m)], ax)

  def tap(start):  # x[start], x[start + 2], ... (m - 2 of them)
    return lax.slice_in_dim(x, start, start + 2 * (m - 2) - 1, stride=2,
                            axis=ax)

  interior = (tap(0) + tap(4) + 4.0 * (tap(1) + tap(3)) +
              6.0 * tap(2)) * 0.0625
  return jnp.concatenate([edge(0), interior, edge(m - 1)], ax)


def up_axis(x, axis, out):
  """cv2.pyrUp along one axis of any array to `out` samples (2n or 2n - 1):
  e.g. [..., H, W] planes, which XLA:CPU filters faster than [..., H, W, 1]
  images."""
  x = jnp.asarray(x) if not hasattr(x, 'dtype') else x
  if not -x.ndim <= axis < x.ndim:
    raise errors.InputError(f'axis={axis} is out of range for x of shape '
                            f'{tuple(x.shape)}.')
  n = x.shape[axis]
  if out not in (2 * n, 2 * n - 1) or n < 1:
    raise errors.InputError(f'up_axis: {out} samples impossible from {n}; '
                            'expected 2n or 2n - 1.')
  checks.finite(x, 'x')
  return _up_axis(x, axis, out)


def _up_axis(x, axis, out):
  """cv2.pyrUp along one axis to `out` (2n or 2n - 1) samples.

  Even outputs are (x[i-1] + 6 x[i] + x[i+1]) / 8, odd ones (x[i] + x[i+1])
  / 2; reflect-101 before the first sample, replicate after the last. Built
  from slices of x (borders from single rows), then interleaved.
  """
  n = x.shape[axis]
  ax = axis % x.ndim
  if _dense_ok(x, n):
    return _dense(x, ax, up_matrix(n, out))

  def sl(a, b):
    return lax.slice_in_dim(x, a, b, axis=ax)

  if n == 1:
    even = odd = x
  else:
    first = (2.0 * sl(1, 2) + 6.0 * sl(0, 1)) * 0.125
    last = (sl(n - 2, n - 1) + 7.0 * sl(n - 1, n)) * 0.125
    mid = [(sl(0, n - 2) + sl(2, n) + 6.0 * sl(1, n - 1)) * 0.125] if n > 2 \
        else []
    even = jnp.concatenate([first] + mid + [last], ax)
    odd = jnp.concatenate([(sl(0, n - 1) + sl(1, n)) * 0.5, sl(n - 1, n)], ax)
  both = jnp.stack([even, odd], ax + 1)
  shape = x.shape[:ax] + (2 * n,) + x.shape[ax + 1:]
  return lax.slice_in_dim(both.reshape(shape), 0, out, axis=ax)


@functools.lru_cache(maxsize=None)
def down_matrix(n):
  """[ceil(n/2), n] float64: down_axis as a matrix (reflect-101 borders);
  cached, read-only."""
  mat = np.zeros(((n + 1) // 2, n), np.float64)
  for i in range(mat.shape[0]):
    for k, w in enumerate(_TAPS):
      mat[i, _reflect101(2 * i + k - 2, n)] += w
  mat.setflags(write=False)  # shared by every caller (cached)
  return mat


@functools.lru_cache(maxsize=None)
def up_matrix(n, out):
  """[out, n] float64: up_axis to `out` (2n or 2n - 1) samples as a matrix
  (reflect-101 before the first sample, replicate after the last); cached,
  read-only."""
  mat = np.zeros((2 * n, n), np.float64)
  for i in range(n):
    before, after = _reflect101(i - 1, n), min(i + 1, n - 1)
    mat[2 * i, before] += 0.125
    mat[2 * i, i] += 0.75
    mat[2 * i, after] += 0.125
    mat[2 * i + 1, i] += 0.5
    mat[2 * i + 1, after] += 0.5
  mat = mat[:out]
  mat.setflags(write=False)  # shared by every caller (cached)
  return mat


def _dense(x, ax, mat):
  """mat [out, n] applied along axis ax of x (exact float32 products)."""
  if not jnp.issubdtype(x.dtype, jnp.floating):
    x = x.astype(jnp.float32)  # as the slice form's float taps promote it
  y = jnp.tensordot(jnp.asarray(mat, x.dtype), x, axes=[[1], [ax]],
                    precision=lax.Precision.HIGHEST)
  return jnp.moveaxis(y, 0, ax)


@compiled.op
def pyr_down(x):
  """cv2.pyrDown on [..., H, W, C] float images -> [..., ceil(H/2), ceil(W/2), C]."""
  x = checks.image(x, 'x', min_hw=2)
  return down_axis(down_axis(x, -3), -2)


@compiled.op
def pyr_up(x, out_hw=None):
  """cv2.pyrUp on [..., h, w, C] to out_hw (default 2h, 2w; each 2n or 2n-1)."""
  x = checks.image(x, 'x')
  h, w = x.shape[-3:-1]
  oh, ow = out_hw or (2 * h, 2 * w)
  if oh not in (2 * h, 2 * h - 1) or ow not in (2 * w, 2 * w - 1):
    raise errors.InputError(f'pyr_up: output size {(oh, ow)} impossible from '
                            f'{(h, w)}; each side must be 2n or 2n-1.')
  return _up_axis(_up_axis(x, -3, oh), -2, ow)


def max_levels(hw):
  """Most levels a pyramid of an (H, W) image can have (coarsest >= 1 px)."""
  return int(min(hw)).bit_length()


def _check_levels(x, levels):
  if levels < 1 or levels > max_levels(x.shape[-3:-1]):
    raise errors.InputError(
        f'levels={levels} impossible for a {x.shape[-3:-1]} image; '
        f'expected 1..{max_levels(x.shape[-3:-1])}.')


@compiled.op
def gaussian_pyramid(x, levels):
  """[x, down(x), ...]: `levels` arrays, finest first."""
  x = checks.image(x, 'x')
  _check_levels(x, levels)
  pyr = [x]
  for _ in range(levels - 1):
    pyr.append(pyr_down(pyr[-1]))
  return pyr


@compiled.op
def laplacian_pyramid(x, levels):
  """Band-pass levels G_i - up(G_{i+1}), then the coarsest Gaussian level."""
  g = gaussian_pyramid(x, levels)
  lap = [a - pyr_up(b, a.shape[-3:-1]) for a, b in zip(g[:-1], g[1:])]
  return lap + [g[-1]]


@compiled.op
def reconstruct(lap):
  """Inverse of laplacian_pyramid: collapse coarse to fine."""
  if not isinstance(lap, (list, tuple)) or not lap:
    raise errors.InputError('lap: expected a non-empty list of pyramid levels, '
                            'finest first.')
  lap = [checks.image(b, f'lap[{i}]') for i, b in enumerate(lap)]
  for i, (fine, coarse) in enumerate(zip(lap[:-1], lap[1:])):
    h, w = fine.shape[-3:-1]
    if (fine.shape[:-3] != coarse.shape[:-3] or fine.shape[-1] !=
        coarse.shape[-1] or coarse.shape[-3:-1] != ((h + 1) // 2,
                                                   (w + 1) // 2)):
      raise errors.InputError(
          f'lap[{i + 1}] has shape {tuple(coarse.shape)}; after '
          f'lap[{i}] of shape {tuple(fine.shape)} expected '
          f'{fine.shape[:-3] + ((h + 1) // 2, (w + 1) // 2)}'
          f'{fine.shape[-1:]} (one pyr_down smaller).')
  x = lap[-1]
  for band in reversed(lap[:-1]):
    x = band + pyr_up(x, band.shape[-3:-1])
  return x
