"""Gaussian and Laplacian pyramids with OpenCV's conventions.

`pyr_down` equals cv2.pyrDown (5-tap [1, 4, 6, 4, 1]/16, reflect-101 borders,
output ceil(n/2)); `pyr_up` equals cv2.pyrUp (even outputs (1, 6, 1)/8, odd
(1, 1)/2; reflect-101 at the top/left border and replicate at the
bottom/right, which is what OpenCV's last-row/column rule amounts to). Both are
written polyphase with strided slices: on XLA:CPU the same filter as a
depthwise lax.conv is ~30x slower. Reconstruction from a Laplacian pyramid is
exact up to float rounding by construction.
"""

import jax.numpy as jnp
from jax import lax

from gensynth.synth import checks


def _down_axis(x, axis):
  n = x.shape[axis]
  m = (n + 1) // 2
  pad = [(0, 0)] * x.ndim
  pad[axis] = (2, 2)
  p = jnp.pad(x, pad, mode='reflect')

  def tap(start):  # p[start], p[start + 2], ... (m of them)
    return lax.slice_in_dim(p, start, start + 2 * m - 1, stride=2, axis=axis)

  return (tap(0) + tap(4) + 4.0 * (tap(1) + tap(3)) + 6.0 * tap(2)) * 0.0625


def _up_axis(x, axis, out):
  n = x.shape[axis]
  ax = axis % x.ndim
  first = lax.slice_in_dim(x, 1, 2, axis=ax) if n > 1 else x
  prev = jnp.concatenate([first, lax.slice_in_dim(x, 0, n - 1, axis=ax)], ax)
  last = lax.slice_in_dim(x, n - 1, n, axis=ax)
  nxt = jnp.concatenate([lax.slice_in_dim(x, 1, n, axis=ax), last], ax)
  even = (prev + nxt + 6.0 * x) * 0.125
  odd = (x + nxt) * 0.5
  both = jnp.stack([even, odd], ax + 1)
  shape = x.shape[:ax] + (2 * n,) + x.shape[ax + 1:]
  return lax.slice_in_dim(both.reshape(shape), 0, out, axis=ax)


def pyr_down(x):
  """cv2.pyrDown on [..., H, W, C] float images -> [..., ceil(H/2), ceil(W/2), C]."""
  x = checks.image(x, 'x', min_hw=2)
  return _down_axis(_down_axis(x, -3), -2)


def pyr_up(x, out_hw=None):
  """cv2.pyrUp on [..., h, w, C] to out_hw (default 2h, 2w; each 2n or 2n-1)."""
  x = checks.image(x, 'x')
  h, w = x.shape[-3:-1]
  oh, ow = out_hw or (2 * h, 2 * w)
  if oh not in (2 * h, 2 * h - 1) or ow not in (2 * w, 2 * w - 1):
    raise ValueError(f'pyr_up: output size {(oh, ow)} impossible from '
                     f'{(h, w)}; each side must be 2n or 2n-1.')
  return _up_axis(_up_axis(x, -3, oh), -2, ow)


def max_levels(hw):
  """Most levels a pyramid of an (H, W) image can have (coarsest >= 1 px)."""
  return int(min(hw)).bit_length()


def _check_levels(x, levels):
  if levels < 1 or levels > max_levels(x.shape[-3:-1]):
    raise ValueError(f'levels={levels} impossible for a {x.shape[-3:-1]} image; '
                     f'expected 1..{max_levels(x.shape[-3:-1])}.')


def gaussian_pyramid(x, levels):
  """[x, down(x), ...]: `levels` arrays, finest first."""
  x = checks.image(x, 'x')
  _check_levels(x, levels)
  pyr = [x]
  for _ in range(levels - 1):
    pyr.append(pyr_down(pyr[-1]))
  return pyr


def laplacian_pyramid(x, levels):
  """Band-pass levels G_i - up(G_{i+1}), then the coarsest Gaussian level."""
  g = gaussian_pyramid(x, levels)
  lap = [a - pyr_up(b, a.shape[-3:-1]) for a, b in zip(g[:-1], g[1:])]
  return lap + [g[-1]]


def reconstruct(lap):
  """Inverse of laplacian_pyramid: collapse coarse to fine."""
  if not isinstance(lap, (list, tuple)) or not lap:
    raise ValueError('lap: expected a non-empty list of pyramid levels, '
                     'finest first.')
  lap = [checks.image(b, f'lap[{i}]') for i, b in enumerate(lap)]
  for i, (fine, coarse) in enumerate(zip(lap[:-1], lap[1:])):
    h, w = fine.shape[-3:-1]
    if (fine.shape[:-3] != coarse.shape[:-3] or fine.shape[-1] !=
        coarse.shape[-1] or coarse.shape[-3:-1] != ((h + 1) // 2,
                                                   (w + 1) // 2)):
      raise ValueError(f'lap[{i + 1}] has shape {tuple(coarse.shape)}; after '
                       f'lap[{i}] of shape {tuple(fine.shape)} expected '
                       f'{fine.shape[:-3] + ((h + 1) // 2, (w + 1) // 2)}'
                       f'{fine.shape[-1:]} (one pyr_down smaller).')
  x = lap[-1]
  for band in reversed(lap[:-1]):
    x = band + pyr_up(x, band.shape[-3:-1])
  return x
