"""Multi-image fusion: exposure fusion (Mertens) and multi-focus fusion."""

import math

import jax
import jax.numpy as jnp

from gensynth.synth import blend
from gensynth.synth import checks
from gensynth.synth import features
from gensynth.synth import pyramid


def mertens_weights(x, *, contrast_weight=1.0, saturation_weight=1.0,
                    exposure_weight=0.0):
  """Per-image quality weights [N, ..., H, W, 1], normalised over N.

  weight = C^wc * S^ws * E^we + 1e-12 as in cv2.createMergeMertens (whose C++
  default switches the well-exposedness term off: exposure_weight=0).
  """
  w = (features.contrast(x)**contrast_weight *
       features.saturation(x)**saturation_weight *
       features.well_exposedness(x)**exposure_weight) + 1e-12
  return w / checks.sum_leading(w)[None]


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
  x = checks.stack(images, 'images')
  if x.shape[-1] != 3:
    raise ValueError(f'images: exposure fusion needs RGB, got {x.shape[-1]} '
                     'channels.')
  hw = x.shape[-3:-1]
  levels = levels or int(math.log2(min(hw))) + 1
  w = mertens_weights(x, contrast_weight=contrast_weight,
                      saturation_weight=saturation_weight,
                      exposure_weight=exposure_weight)
  img_pyr = pyramid.laplacian_pyramid(x, levels)
  w_pyr = pyramid.gaussian_pyramid(w, levels)
  return pyramid.reconstruct([checks.sum_leading(a * b)
                              for a, b in zip(img_pyr, w_pyr)])


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
    fused.append(checks.sum_leading(band * choice))
  fused.append(checks.sum_leading(lap[-1]) / x.shape[0])
  return pyramid.reconstruct(fused)


def pyramid_max_abs_fusion(images, *, levels=5):
  """Baseline: per-coefficient max-|.| selection, coarsest level averaged."""
  x = checks.stack(images, 'images')
  lap = pyramid.laplacian_pyramid(x, levels)
  fused = [jnp.take_along_axis(b, jnp.argmax(jnp.abs(b), 0)[None], 0)[0]
           for b in lap[:-1]]
  return pyramid.reconstruct(fused + [checks.sum_leading(lap[-1]) / x.shape[0]])


# Average fusion is a weighted blend with equal weights.
def average_fusion(images):
  x = checks.stack(images, 'images')
  return blend.weighted_blend(x, jnp.full((x.shape[0],), 1.0 / x.shape[0]))
