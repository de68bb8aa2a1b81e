"""Projective warping with bilinear sampling: [..., H, W, C] images."""

import jax
import jax.numpy as jnp
import numpy as np

from gensynth import errors
from gensynth.synth import checks
from gensynth.synth import compiled


def bilinear_sample(image, x, y):
  """Samples image [H, W, C] at float coords x, y [...]; returns (values
  [..., C], inside [...]). Outside points read 0 and are marked invalid."""
  image = _one_image(image, 'bilinear_sample')
  x = checks.values(x, 'x', expected='sample coordinates')
  y = checks.values(y, 'y', expected='sample coordinates')
  if x.shape != y.shape:
    raise errors.InputError(f'x and y must share one shape, got {x.shape} and '
                            f'{y.shape}.')
  return bilinear_unchecked(image, x, y)


def _one_image(image, op):
  image = checks.image(image, 'image')
  if image.ndim != 3:
    raise errors.InputError(
        f'image: {op} takes one [H, W, C] image (vmap it for '
        f'batches), got {image.shape}.')
  return image


def bilinear_unchecked(image, x, y):
  """`bilinear_sample` without its input checks, for callers that have
  checked `image` already (e.g. inside a jitted pipeline)."""
  h, w = image.shape[-3:-1]
  # Far-off points are outside anyway; clamping keeps float -> int defined.
  x, y = jnp.clip(x, -2.0**20, 2.0**20), jnp.clip(y, -2.0**20, 2.0**20)
  x0, y0 = jnp.floor(x), jnp.floor(y)
  fx, fy = x - x0, y - y0
  x0i, y0i = x0.astype(jnp.int32), y0.astype(jnp.int32)
  inside = (x >= 0) & (y >= 0) & (x <= w - 1) & (y <= h - 1)

  def at(yy, xx):
    ok = (xx >= 0) & (yy >= 0) & (xx < w) & (yy < h)
    v = image[jnp.clip(yy, 0, h - 1), jnp.clip(xx, 0, w - 1)]
    return jnp.where(ok[..., None], v, 0.0)

  top = at(y0i, x0i) * (1 - fx)[..., None] + at(y0i, x0i + 1) * fx[..., None]
  bot = (at(y0i + 1, x0i) * (1 - fx)[..., None] +
         at(y0i + 1, x0i + 1) * fx[..., None])
  return top * (1 - fy)[..., None] + bot * fy[..., None], inside


def _check_invertible(arguments):
  """A concrete, finite 3x3 h must be invertible (other shapes and values
  get their errors from checks.values while the op is traced; a traced h
  is not known here)."""
  h = arguments['h']
  if isinstance(h, jax.core.Tracer):
    return
  try:
    h = np.asarray(h, np.float32)
  except (TypeError, ValueError):
    return  # not numbers: checks.values names the problem
  if h.shape == (3, 3) and np.all(np.isfinite(h)) and not abs(
      float(np.linalg.det(h))) > 0:
    raise errors.InputError('h is singular (determinant 0); expected an '
                            'invertible homography.')


@compiled.op(host_check=_check_invertible)
def warp_perspective(image, h, out_hw, *, offset=(0.0, 0.0)):
  """Warps image [H, W, C] by homography h (source -> output) onto out_hw.

  Output pixel (x, y) (shifted by `offset`, the canvas origin in the output
  frame) samples the source at h^-1 (x, y).

  Returns:
    (warped [oh, ow, C], valid [oh, ow, 1] float mask).
  """
  image = _one_image(image, 'warp_perspective')
  if len(out_hw) != 2 or min(out_hw) < 1:
    raise errors.InputError(
        f'out_hw={tuple(out_hw)}: expected a positive (height, '
        'width).')
  oh, ow = (int(v) for v in out_hw)
  h = checks.values(h, 'h', shape=(3, 3), expected='a 3x3 homography')
  offset = checks.values(offset, 'offset', shape=(2,),
                         expected='the canvas origin (x, y)')
  ys, xs = jnp.meshgrid(jnp.arange(oh, dtype=jnp.float32) + offset[1],
                        jnp.arange(ow, dtype=jnp.float32) + offset[0],
                        indexing='ij')
  hinv = jnp.linalg.inv(jnp.asarray(h, jnp.float32))
  z = hinv[2, 0] * xs + hinv[2, 1] * ys + hinv[2, 2]
  ahead = z > 1e-12  # behind the camera or at infinity: outside
  z = jnp.where(ahead, z, 1.0)
  sx = (hinv[0, 0] * xs + hinv[0, 1] * ys + hinv[0, 2]) / z
  sy = (hinv[1, 0] * xs + hinv[1, 1] * ys + hinv[1, 2]) / z
  sx, sy = jnp.where(ahead, sx, -1.0), jnp.where(ahead, sy, -1.0)
  vals, inside = bilinear_unchecked(image, sx, sy)
  inside = inside & ahead
  return (jnp.where(inside[..., None], vals, 0.0).astype(image.dtype),
          inside[..., None].astype(image.dtype))
