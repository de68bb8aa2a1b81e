"""Projective warping with bilinear sampling: [..., H, W, C] images."""

import jax.numpy as jnp

from gensynth.synth import checks


def bilinear_sample(image, x, y):
  """Samples image [H, W, C] at float coords x, y [...]; returns (values
  [..., C], inside [...]). Outside points read 0 and are marked invalid."""
  h, w = image.shape[-3:-1]
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


def warp_perspective(image, h, out_hw, *, offset=(0.0, 0.0)):
  """Warps image [H, W, C] by homography h (source -> output) onto out_hw.

  Output pixel (x, y) (shifted by `offset`, the canvas origin in the output
  frame) samples the source at h^-1 (x, y).

  Returns:
    (warped [oh, ow, C], valid [oh, ow, 1] float mask).
  """
  image = checks.image(image, 'image')
  if image.ndim != 3:
    raise ValueError(f'image: warp_perspective takes one [H, W, C] image '
                     f'(vmap it for batches), got {image.shape}.')
  oh, ow = out_hw
  ys, xs = jnp.meshgrid(jnp.arange(oh, dtype=jnp.float32) + offset[1],
                        jnp.arange(ow, dtype=jnp.float32) + offset[0],
                        indexing='ij')
  hinv = jnp.linalg.inv(jnp.asarray(h, jnp.float32))
  z = hinv[2, 0] * xs + hinv[2, 1] * ys + hinv[2, 2]
  sx = (hinv[0, 0] * xs + hinv[0, 1] * ys + hinv[0, 2]) / z
  sy = (hinv[1, 0] * xs + hinv[1, 1] * ys + hinv[1, 2]) / z
  vals, inside = bilinear_sample(image, sx, sy)
  inside = inside & (z > 0)
  return vals * inside[..., None], inside[..., None].astype(image.dtype)
