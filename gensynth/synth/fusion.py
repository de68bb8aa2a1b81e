"""Multi-image fusion: exposure fusion (Mertens) and multi-focus fusion."""

import math

import jax
import jax.numpy as jnp

from gensynth import errors
from gensynth.synth import blend
from gensynth.synth import checks
from gensynth.synth import compiled
from gensynth.synth import features
from gensynth.synth import pyramid
from gensynth.synth import xla_hints


@compiled.op
def mertens_weights(x, *, contrast_weight=1.0, saturation_weight=1.0,
                    exposure_weight=0.0):
  """Per-image quality weights [N, ..., H, W, 1], normalised over N.

  weight = C^wc * S^ws * E^we + 1e-12 as in cv2.createMergeMertens (whose C++
  default switches the well-exposedness term off: exposure_weight=0).
  """
  x = checks.image(x, 'x')
  if x.ndim < 4:
    raise errors.InputError(
        f'x: expected N images [N, ..., H, W, C], got shape '
        f'{tuple(x.shape)}.')
  w, total = _weights_and_total(x, contrast_weight, saturation_weight,
                                exposure_weight)
  return w / total[None]


def _weights_and_total(x, contrast_weight, saturation_weight, exposure_weight,
                       to_float=lambda v: v):
  """Unnormalised weights [N, ..., H, W, 1] and their sum over N."""
  w, total = _weights_and_total_2d(x, contrast_weight, saturation_weight,
                                   exposure_weight, to_float)
  return w[..., None], total[..., None]


def _weights_and_total_2d(x, wc, ws, we, to_float):
  """Unnormalised weights [N, ..., H, W] (no channel axis) and their sum."""
  # A scan over the N images materialises each weight map once; as one
  # expression, XLA fuses the weights into every term of the normalising sum
  # and recomputes them N times.
  def weigh(total, xi):
    wi = _unnormalised_weights_2d(to_float(xi), wc, ws, we)
    return total + wi, wi

  dtype = _float_dtype(x, to_float)
  return _swap(jax.lax.scan(weigh, jnp.zeros(x.shape[1:-1], dtype), x))


def _float_dtype(x, to_float):
  return jax.eval_shape(to_float, jax.ShapeDtypeStruct(x.shape[1:],
                                                       x.dtype)).dtype


def _swap(pair):
  total, w = pair
  return w, total


def _unnormalised_weights_2d(x, wc, ws, we):
  """features.contrast/saturation/well_exposedness (same arithmetic, same
  rounding) on [..., H, W] planes: with a unit channel axis the same
  stencils run as scalar loops on XLA:CPU."""
  chans = [x[..., i] for i in range(x.shape[-1])]
  w = 1.0
  if not (isinstance(wc, (int, float)) and wc == 0):
    if len(chans) == 1:
      grey = chans[0]
    elif len(chans) in (3, 4):
      grey = xla_hints.unrolled(jnp.add, [
          wt * c for wt, c in zip(features.LUMA, chans)])
    else:
      raise errors.InputError(f'x: contrast needs 1, 3 or 4 channels, got '
                              f'{len(chans)}.')
    lap = (features.taps(grey, -2, (1.0, -2.0, 1.0)) +
           features.taps(grey, -1, (1.0, -2.0, 1.0)))
    w = w * _power(jnp.abs(lap), wc)
  if not (isinstance(ws, (int, float)) and ws == 0):
    mean = xla_hints.unrolled(jnp.add, chans) / len(chans)
    sat = jnp.sqrt(xla_hints.unrolled(jnp.add, [(c - mean)**2
                                                for c in chans]))
    w = w * _power(sat, ws)
  if not (isinstance(we, (int, float)) and we == 0):
    expo = xla_hints.unrolled(jnp.multiply, [
        jnp.exp(-(c - 0.5)**2 / (2 * 0.2**2)) for c in chans])
    w = w * _power(expo, we)
  return w + 1e-12


def _power(m, e):
  # x**1 == x exactly (as OpenCV's pow): skip that work.
  return m if isinstance(e, (int, float)) and e == 1 else m**e


@compiled.op
def exposure_fusion(images, *, contrast_weight=1.0, saturation_weight=1.0,
                    exposure_weight=0.0, levels=None):
  """Exposure fusion after Mertens, Kautz & Van Reeth (2007).

  Args:
    images: N exposures [..., H, W, 3] in [0, 1] (list or [N, ...] array).
    contrast_weight, saturation_weight, exposure_weight: exponents of the three
      quality measures (defaults = OpenCV's).
    levels: pyramid levels; default floor(log2(min(H, W))) + 1 as OpenCV.

  Returns:
    fused float image [..., H, W, 3] (not clipped, as OpenCV's).
  """
  x, to_float = checks.stack_raw(images, 'images')
  if x.shape[-1] != 3:
    raise errors.InputError(
        f'images: exposure fusion needs RGB, got {x.shape[-1]} '
        'channels.')
  levels, shapes = _band_shapes(x, to_float, levels)
  w, total = _weights_and_total_2d(x, contrast_weight, saturation_weight,
                                   exposure_weight, to_float)
  return _blend_planes(x, w, total, levels, shapes, to_float)


def _band_shapes(x, to_float, levels):
  """(levels, band shapes of one image of x [N, ..., H, W, C]); levels
  defaults to floor(log2(min(H, W))) + 1 as OpenCV's, and a bad value is a
  ValueError before any work."""
  levels = levels or int(math.log2(min(x.shape[-3:-1]))) + 1
  shapes = jax.eval_shape(lambda y: pyramid.laplacian_pyramid(y, levels),
                          jax.ShapeDtypeStruct(x.shape[1:],
                                               _float_dtype(x, to_float)))
  return levels, shapes


def _blend_planes(x, w, total, levels, shapes, to_float):
  """sum_n lap(x_n) * gauss(w_n / total), collapsed: x [N, ..., H, W, C],
  weight planes w [N, ..., H, W], total [..., H, W] or None (w normalised);
  `shapes` are the band shapes of one image."""
  # One exposure at a time, accumulating the fused pyramid (as OpenCV does):
  # the working set is one image's pyramids, not N of them. Weights are
  # filtered as [..., H, W] planes and broadcast over the colour channels.
  def add_exposure(acc, xw):
    lap = pyramid.laplacian_pyramid(to_float(xw[0]), levels)
    g = [xw[1] if total is None else xw[1] / total]
    for _ in range(levels - 1):
      g.append(pyramid.down_axis(pyramid.down_axis(g[-1], -2), -1))
    return [a + b * c[..., None] for a, b, c in zip(acc, lap, g)], None

  acc, _ = jax.lax.scan(add_exposure,
                        [jnp.zeros(s.shape, s.dtype) for s in shapes], (x, w))
  return pyramid.reconstruct(acc)


@compiled.op
def weighted_pyramid_fusion(images, weights, *, levels=None, total=None):
  """Pyramid blend of N images by per-pixel weights, as Mertens fusion
  applies its quality weights: sum_n Laplacian(x_n) * Gaussian(w_n), levels
  collapsed.

  Args:
    images: N images [..., H, W, C] (list or [N, ..., H, W, C] array).
    weights: [N, ..., H, W] weights, normalised over N per pixel (negative
      values count as 0; where all are 0 the images are averaged).
    levels: pyramid levels; default floor(log2(min(H, W))) + 1.
    total: optional [..., H, W] sum of the (positive) weights over N; given,
      the weights are divided by it one image at a time (no normalised copy
      of all N planes; the caller vouches for it).

  Returns:
    fused float image [..., H, W, C].
  """
  x, to_float = checks.stack_raw(images, 'images')
  w = checks.values(weights, 'weights', min_ndim=3,
                    expected='[N, ..., H, W] weights')
  if w.shape != x.shape[:-1]:
    raise errors.InputError(
        f'weights: shape {tuple(w.shape)}; expected {tuple(x.shape[:-1])} '
        '(one [..., H, W] plane per image).')
  levels, shapes = _band_shapes(x, to_float, levels)
  if total is None:
    w = blend.normalise_masks(w)
  elif tuple(total.shape) != tuple(x.shape[1:-1]):
    raise errors.InputError(
        f'total: shape {tuple(total.shape)}; expected {tuple(x.shape[1:-1])}.')
  dtype = shapes[0].dtype
  return _blend_planes(x, w.astype(dtype), None if total is None else
                       total.astype(dtype), levels, shapes, to_float)


@compiled.op
def mertens_quality(images, *, contrast_weight=1.0, saturation_weight=1.0,
                    exposure_weight=0.0):
  """Unnormalised Mertens quality C^wc * S^ws * E^we + 1e-12 as planes
  [N, ..., H, W] (exposure_fusion's weights before normalisation)."""
  x = checks.stack(images, 'images')
  return jax.vmap(lambda xi: _unnormalised_weights_2d(
      xi, contrast_weight, saturation_weight, exposure_weight))(x)


@compiled.op
def multifocus_fusion(images, *, levels=5, radius=2, consistency=1):
  """Multi-focus fusion by pyramid coefficient selection.

  At each band-pass level the source with the highest local energy (box-summed
  squared Laplacian coefficients, window 2*radius+1) wins; the decision map is
  then made consistent by a majority vote over a (2*consistency+1)^2
  neighbourhood, so isolated choices follow their surroundings. The coarsest
  level is averaged.

  Args:
    images: N sources [..., H, W, C] of one scene (list or [N, ...] array).
    levels: pyramid levels.
    radius: activity window radius.
    consistency: radius of the majority filter (0 = off).

  Returns:
    fused float image [..., H, W, C].
  """
  x = checks.stack(images, 'images')
  lap = pyramid.laplacian_pyramid(x, levels)
  fused = []
  for band in lap[:-1]:
    activity = features.local_energy(
        jnp.sum(band**2, axis=-1, keepdims=True), radius=radius)
    choice = jax.nn.one_hot(jnp.argmax(activity, axis=0), x.shape[0], axis=0)
    if consistency:
      choice = jax.nn.one_hot(
          jnp.argmax(features.box_filter(choice, consistency), axis=0),
          x.shape[0], axis=0)
    fused.append(xla_hints.sum_leading(band * choice))
  fused.append(xla_hints.sum_leading(lap[-1]) / x.shape[0])
  return pyramid.reconstruct(fused)


@compiled.op
def pyramid_max_abs_fusion(images, *, levels=5):
  """Baseline: per-coefficient max-|.| selection, coarsest level averaged."""
  x = checks.stack(images, 'images')
  lap = pyramid.laplacian_pyramid(x, levels)
  fused = [jnp.take_along_axis(b, jnp.argmax(jnp.abs(b), 0)[None], 0)[0]
           for b in lap[:-1]]
  return pyramid.reconstruct(fused + [xla_hints.sum_leading(lap[-1]) / x.shape[0]])


# Average fusion is a weighted blend with equal weights.
def average_fusion(images):
  x = checks.stack(images, 'images')
  return blend.weighted_blend(x, jnp.full((x.shape[0],), 1.0 / x.shape[0]))
