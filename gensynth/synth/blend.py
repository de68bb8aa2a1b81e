"""Weighted and multi-band (Laplacian pyramid) blending of N images."""

import jax.numpy as jnp

from gensynth.synth import checks
from gensynth.synth import pyramid


def weighted_blend(images, weights, *, bias=0.0):
  """sum_i weights[i] * images[i] + bias: cv2.addWeighted generalised to N.

  Args:
    images: list of N images [..., H, W, C] (or an array [N, ..., H, W, C]).
    weights: N scalars (sequence or array [N]); any real values, no clipping
      (as addWeighted on float input).
    bias: added to the sum (addWeighted's gamma).

  Returns:
    float image [..., H, W, C].
  """
  x = checks.stack(images, 'images')
  w = jnp.asarray(weights, jnp.float32)
  if w.shape != (x.shape[0],):
    raise ValueError(f'weights: shape {w.shape}, expected ({x.shape[0]},): one '
                     'weight per image.')
  w = w.reshape((-1,) + (1,) * (x.ndim - 1)).astype(x.dtype)
  return jnp.sum(w * x, axis=0) + bias


def normalise_masks(masks, eps=1e-12):
  """[N, ..., H, W, C] non-negative weights -> per-pixel convex weights.

  Where all weights are zero the images are averaged.
  """
  total = jnp.sum(masks, axis=0, keepdims=True)
  n = masks.shape[0]
  return jnp.where(total > eps, masks / jnp.maximum(total, eps), 1.0 / n)


def multiband_blend(images, masks, *, levels=6):
  """Laplacian-pyramid blending (Burt & Adelson) of N images with soft masks.

  Args:
    images: N images [..., H, W, C] (list or [N, ..., H, W, C] array).
    masks: N weight maps [..., H, W] or [..., H, W, 1|C], same layout; weights
      are normalised per pixel. For two images, `two_image_masks(m)` turns one
      mask m (the weight of the second image) into the pair.
    levels: pyramid levels (1 = plain per-pixel weighting).

  Returns:
    float image [..., H, W, C].
  """
  x = checks.stack(images, 'images')
  if isinstance(masks, (list, tuple)):
    masks = jnp.stack([jnp.asarray(m) for m in masks])
  if masks.shape[0] != x.shape[0]:
    raise ValueError(f'masks: {masks.shape[0]} masks for {x.shape[0]} images.')
  m = checks.mask_like(masks, x.shape, 'masks')
  m = normalise_masks(jnp.clip(m, 0.0, None))
  img_pyr = pyramid.laplacian_pyramid(x, levels)
  mask_pyr = pyramid.gaussian_pyramid(m, levels)
  return pyramid.reconstruct([jnp.sum(a * w, axis=0)
                              for a, w in zip(img_pyr, mask_pyr)])


def two_image_masks(mask):
  """Weight map of the second image -> stacked masks [1 - mask, mask]."""
  mask = jnp.asarray(mask, jnp.float32)
  return jnp.stack([1.0 - mask, mask])


def feather_masks(valid, *, radius=16):
  """Soft seam weights from validity masks [N, ..., H, W, 1]: each mask is
  box-blurred `radius` pixels so overlaps cross-fade, then normalised."""
  from gensynth.synth import features  # pylint: disable=g-import-not-at-top
  valid = jnp.asarray(valid, jnp.float32)
  soft = features.box_filter(valid, radius) * valid
  return normalise_masks(soft)
