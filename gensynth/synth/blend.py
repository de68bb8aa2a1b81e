"""Weighted and multi-band (Laplacian pyramid) blending of N images."""

import math

import jax
import jax.numpy as jnp

from gensynth import errors
from gensynth.synth import checks
from gensynth.synth import compiled
from gensynth.synth import features
from gensynth.synth import pyramid
from gensynth.synth import xla_hints


@compiled.op
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
  w = checks.values(weights, 'weights', expected='one weight per image')
  if w.shape != (x.shape[0],):
    raise errors.InputError(
        f'weights: shape {w.shape}, expected ({x.shape[0]},): one '
        'weight per image.')
  w = w.reshape((-1,) + (1,) * (x.ndim - 1)).astype(x.dtype)
  if isinstance(bias, (int, float)) and not math.isfinite(bias):
    raise errors.InputError(f'bias={bias}: expected a finite number.')
  return xla_hints.sum_leading(w * x) + bias


def weighted_blend_into(dst, images, weights, *, bias=0.0):
  """weighted_blend written over `dst`: the form for streaming loops.

  Values are those of weighted_blend(images, weights, bias=bias); dst only
  lends its buffer. Jit it with dst donated (what cv2.addWeighted's `dst`
  argument does):

    blend_into = jax.jit(weighted_blend_into, donate_argnums=0)
    for ...:
      out = blend_into(out, frames, weights)

  A fresh output buffer each call costs page faults on first touch, which a
  donated buffer avoids (`launch.benchmark --bench=weighted_blend`).

  Args:
    dst: array with the result's shape and dtype (its values are ignored).
    images, weights, bias: as in weighted_blend.

  Returns:
    the blend, in dst's buffer when dst is donated.
  """
  out = weighted_blend(images, weights, bias=bias)
  dst = jnp.asarray(dst)
  if dst.shape != out.shape or dst.dtype != out.dtype:
    raise errors.InputError(
        f'dst: shape {tuple(dst.shape)} and dtype {dst.dtype}; '
        f'expected the result\'s {tuple(out.shape)} {out.dtype}.')
  return dst.at[...].set(out)


@compiled.op
def normalise_masks(masks, eps=1e-12):
  """[N, ...] weights -> per-position convex weights (summing to 1 over N).

  Negative weights count as 0; where all weights are zero the N inputs are
  averaged.
  """
  masks = checks.values(masks, 'masks', min_ndim=1,
                        expected='[N, ...] weights, N >= 1')
  if not masks.shape[0]:
    raise errors.InputError('masks: no masks given (leading axis of size 0).')
  return _normalise(jnp.clip(masks, 0.0, None), eps)


def _normalise(masks, eps=1e-12):
  total = xla_hints.sum_leading(masks)[None]
  n = masks.shape[0]
  return jnp.where(total > eps, masks / jnp.maximum(total, eps), 1.0 / n)


@compiled.op
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
    raise errors.InputError(
        f'masks: {masks.shape[0]} masks for {x.shape[0]} images.')
  m = checks.mask_like(masks, x.shape, 'masks')
  m = _normalise(jnp.clip(m, 0.0, None))
  # The normalised weights w_k sum to 1 at every level (the Gaussian pyramid
  # is linear and keeps constants), and the Laplacian pyramid L is linear, so
  #   sum_k w_k L(x_k) = L(x_N) + sum_{k<N} w_k L(x_k - x_N),
  # and reconstruction (linear, exact) gives back x_N for the first term:
  # N - 1 image pyramids and N - 1 weight pyramids instead of N and N. The
  # same blend up to float rounding, about half the work for two images.
  last = x[-1]
  diff_pyr = pyramid.laplacian_pyramid(x[:-1] - last[None], levels)
  mask_pyr = pyramid.gaussian_pyramid(m[:-1], levels)
  return last + pyramid.reconstruct([xla_hints.sum_leading(a * w)
                                     for a, w in zip(diff_pyr, mask_pyr)])


def two_image_masks(mask):
  """Weight map of the second image -> stacked masks [1 - mask, mask].

  Values are clipped to [0, 1] (1 = all second image).
  """
  mask = jnp.clip(checks.values(mask, 'mask', expected='a weight map'), 0.0,
                  1.0)
  return jnp.stack([1.0 - mask, mask])


@compiled.op
def feather_masks(valid, *, radius=16):
  """Soft seam weights from validity masks [N, ..., H, W, 1]: each mask is
  box-blurred `radius` pixels so overlaps cross-fade, then normalised."""
  valid = jnp.clip(checks.image(valid, 'valid').astype(jnp.float32), 0.0, 1.0)
  if valid.ndim < 4 or not valid.shape[0]:
    raise errors.InputError(
        f'valid: expected N >= 1 masks [N, ..., H, W, 1], got '
        f'shape {tuple(valid.shape)}.')
  soft = features.box_filter(valid, radius) * valid
  return _normalise(soft)


def _neighbour_sum(x):
  """Sum of the 4-neighbours inside the image (zero beyond the border)."""
  pad = [(0, 0)] * (x.ndim - 3) + [(1, 1), (1, 1), (0, 0)]
  p = jnp.pad(x, pad)
  return (p[..., :-2, 1:-1, :] + p[..., 2:, 1:-1, :] +
          p[..., 1:-1, :-2, :] + p[..., 1:-1, 2:, :])


@compiled.op
def poisson_blend(source, target, mask, *, mixed=False, tol=1e-5,
                  maxiter=5000):
  """Gradient-domain (Poisson) blending of `source` into `target`.

  Inside the mask the result takes the source's gradients (or, with mixed,
  whichever of source/target gradient is stronger per edge); on and outside the
  mask boundary it equals the target (Dirichlet condition, Perez et al. 2003).
  The discrete Poisson system is solved on device by matrix-free conjugate
  gradients, started from the source shifted to the target's mean.

  Args:
    source, target: aligned images [..., H, W, C].
    mask: [..., H, W] or [..., H, W, 1]; pixels > 0.5 are blended.
    mixed: mixed-gradient guidance.
    tol, maxiter: conjugate-gradient stopping rule.

  Returns:
    float image [..., H, W, C].
  """
  s = checks.image(source, 'source', min_hw=3)
  t = checks.image(target, 'target', min_hw=3)
  checks.same_shape([s, t], ['source', 'target'])
  m = (checks.mask_like(jnp.asarray(mask), s.shape, 'mask') > 0.5).astype(
      s.dtype)
  ones = jnp.ones(s.shape[-3:-1] + (1,), s.dtype)
  degree = _neighbour_sum(ones)  # 2, 3 or 4 neighbours inside the image

  def guidance(img):  # sum over neighbours q of (img_p - img_q)
    return degree * img - _neighbour_sum(img)

  if mixed:
    # Per-edge choice needs the individual differences.
    pad = [(0, 0)] * (s.ndim - 3) + [(1, 1), (1, 1), (0, 0)]
    ps, pt = jnp.pad(s, pad, mode='edge'), jnp.pad(t, pad, mode='edge')
    g = 0.0
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
      sl = (..., slice(1 + dy, s.shape[-3] + 1 + dy),
            slice(1 + dx, s.shape[-2] + 1 + dx), slice(None))
      ds, dt = s - ps[sl], t - pt[sl]
      g = g + jnp.where(jnp.abs(ds) > jnp.abs(dt), ds, dt)
  else:
    g = guidance(s)
  # Unknowns inside the mask; known target values outside enter the RHS.
  b = m * (g + _neighbour_sum((1 - m) * t))

  def apply_a(x):
    return m * (degree * x - _neighbour_sum(m * x)) + (1 - m) * x

  shift = jnp.sum(m * (t - s), axis=(-3, -2), keepdims=True) / jnp.maximum(
      jnp.sum(m, axis=(-3, -2), keepdims=True), 1.0)
  x0 = m * (s + shift)
  x, _ = jax.scipy.sparse.linalg.cg(apply_a, b, x0=x0, tol=tol,
                                    maxiter=maxiter)
  return m * x + (1 - m) * t
