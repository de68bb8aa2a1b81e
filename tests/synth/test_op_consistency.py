"""dm_pix-style consistency of every public array op: under `jax.jit` the
result equals the eager one, `jax.vmap` over a batch equals a Python loop,
and where the op is differentiable its gradient is finite.

The ops are those of the property registry (tests/synth/test_op_properties.py
CASES); `test_every_registered_op_is_checked_here` fails when an op is added
there without a spec here (or a stated reason why it cannot be).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gensynth.metrics import image as image_metrics
from gensynth.synth import blend
from gensynth.synth import features
from gensynth.synth import fusion
from gensynth.synth import homography
from gensynth.synth import keypoints
from gensynth.synth import latent
from gensynth.synth import pyramid
from gensynth.synth import stitch
from gensynth.synth import warp
from tests.synth import test_op_properties

H, W, C, B = 12, 10, 3, 3  # image size and vmap batch


def _img(rng, c=C, hw=(H, W)):
  return rng.uniform(0.05, 0.95, hw + (c,)).astype(np.float32)


def _big(rng):  # SSIM-family windows need at least 11x11 (MEF-SSIM 44x44)
  return _img(rng, hw=(48, 46))


def _one(fn, c=C, diff=True):
  return (fn, lambda rng: (_img(rng, c),), diff)


def _two(fn, diff=True):
  return (fn, lambda rng: (_img(rng), _img(rng)), diff)


def _stack(fn, diff=True):
  return (lambda a, b: fn([a, b]), lambda rng: (_img(rng), _img(rng)), diff)


def _mask(rng):
  return rng.uniform(0, 1, (H, W)).astype(np.float32)


# name: (fn of arrays, rng -> arrays (each gets a batch axis under vmap),
#        whether a gradient w.r.t. the first array is defined)
SPECS = {
    'blend.feather_masks': (
        functools.partial(blend.feather_masks, radius=2),
        lambda rng: ((rng.uniform(size=(2, H, W, 1)) > 0.5).astype(
            np.float32),), False),
    'blend.multiband_blend': (
        lambda a, b, m: blend.multiband_blend(
            [a, b], blend.two_image_masks(m), levels=2),
        lambda rng: (_img(rng), _img(rng), _mask(rng)), True),
    'blend.normalise_masks': (
        blend.normalise_masks,
        lambda rng: (rng.uniform(0.1, 1, (2, H, W)).astype(np.float32),),
        True),
    'blend.poisson_blend': (
        lambda a, b, m: blend.poisson_blend(a, b, m, maxiter=30),
        lambda rng: (_img(rng), _img(rng), (_mask(rng) > 0.5).astype(
            np.float32)), False),
    'blend.two_image_masks': (blend.two_image_masks,
                              lambda rng: (_mask(rng),), True),
    'blend.weighted_blend': (
        lambda a, b: blend.weighted_blend([a, b], jnp.array([0.3, 0.7])),
        lambda rng: (_img(rng), _img(rng)), True),
    'blend.weighted_blend_into': (
        lambda d, a, b: blend.weighted_blend_into(d, [a, b],
                                                  jnp.array([0.3, 0.7])),
        lambda rng: (_img(rng), _img(rng), _img(rng)), True),
    'features.box_filter': _one(lambda x: features.box_filter(x, 2)),
    'features.colour_stats': _one(features.colour_stats),
    'features.contrast': _one(features.contrast),
    'features.grey': _one(features.grey),
    'features.laplacian': _one(features.laplacian),
    'features.local_energy': _one(features.local_energy),
    'features.saturation': _one(features.saturation),
    'features.sobel': _one(features.sobel),
    'features.well_exposedness': _one(features.well_exposedness),
    'fusion.average_fusion': _stack(fusion.average_fusion),
    'fusion.exposure_fusion': _stack(
        functools.partial(fusion.exposure_fusion, levels=2)),
    'fusion.mertens_weights': (
        fusion.mertens_weights,
        lambda rng: (np.stack([_img(rng), _img(rng)]),), True),
    'fusion.weighted_pyramid_fusion': (
        functools.partial(fusion.weighted_pyramid_fusion, levels=2),
        lambda rng: (np.stack([_img(rng), _img(rng)]),
                     rng.uniform(0, 1, (2, H, W)).astype(np.float32)), True),
    'fusion.mertens_quality': (
        fusion.mertens_quality,
        lambda rng: (np.stack([_img(rng), _img(rng)]),), True),
    'fusion.multifocus_fusion': _stack(
        functools.partial(fusion.multifocus_fusion, levels=2), diff=False),
    'fusion.pyramid_max_abs_fusion': _stack(
        functools.partial(fusion.pyramid_max_abs_fusion, levels=2),
        diff=False),
    'homography.apply_homography': (
        homography.apply_homography,
        lambda rng: (np.eye(3, dtype=np.float32) + rng.normal(
            0, 0.01, (3, 3)).astype(np.float32),
                     rng.uniform(0, 10, (6, 2)).astype(np.float32)), True),
    'homography.distance_matrix': (
        functools.partial(homography.distance_matrix, binary=False),
        lambda rng: (rng.normal(size=(5, 4)).astype(np.float32),
                     rng.normal(size=(6, 4)).astype(np.float32)), True),
    'homography.fit_homography': (
        homography.fit_homography,
        lambda rng: (rng.uniform(0, 10, (8, 2)).astype(np.float32),
                     rng.uniform(0, 10, (8, 2)).astype(np.float32),
                     np.ones(8, np.float32)), False),
    'homography.match': (
        lambda a, b: homography.match(a, b, binary=False),
        lambda rng: (rng.normal(size=(5, 4)).astype(np.float32),
                     rng.normal(size=(6, 4)).astype(np.float32)), False),
    'homography.ransac_homography': (
        lambda k, a, b, v: homography.ransac_homography(
            jax.random.wrap_key_data(k), a, b, v, num_hypotheses=64),
        lambda rng: (np.asarray(jax.random.key_data(jax.random.key(
            int(rng.integers(1 << 30))))),
                     rng.uniform(0, 10, (12, 2)).astype(np.float32),
                     rng.uniform(0, 10, (12, 2)).astype(np.float32),
                     np.ones(12, bool)), False),
    'keypoints.detect_and_describe': (
        lambda x: keypoints.detect_and_describe(x, num_keypoints=8,
                                                num_scales=2),
        lambda rng: (rng.uniform(0, 1, (48, 40, 1)).astype(np.float32),),
        False),
    'image.average_gradient': _one(image_metrics.average_gradient),
    'image.entropy': _one(image_metrics.entropy, diff=False),
    'image.mef_ssim': (
        image_metrics.mef_ssim,
        lambda rng: (np.stack([_big(rng), _big(rng)]), _big(rng)), True),
    'image.mutual_information': (
        image_metrics.mutual_information,
        lambda rng: (_img(rng), _img(rng), _img(rng)), False),
    'image.psnr': _two(image_metrics.psnr),
    'image.qabf_sources': (
        image_metrics.qabf_sources,
        lambda rng: (np.stack([_img(rng), _img(rng), _img(rng)]), _img(rng)),
        True),
    'image.qabf': (image_metrics.qabf,
                   lambda rng: (_img(rng), _img(rng), _img(rng)), True),
    'image.spatial_frequency': _one(image_metrics.spatial_frequency),
    'image.ssim': (image_metrics.ssim, lambda rng: (_big(rng), _big(rng)),
                   True),
    'image.standard_deviation': _one(image_metrics.standard_deviation),
    'keypoints.harris_response': _one(keypoints.harris_response, c=1),
    'latent.combine_latents': (
        lambda z: latent.combine_latents(z, weights=jnp.array([0.25, 0.75])),
        lambda rng: (rng.normal(size=(2, 4)).astype(np.float32),), True),
    'latent.interpolate': (
        lambda a, b: latent.interpolate(a, b, 5),
        lambda rng: (rng.normal(size=(4,)).astype(np.float32),
                     rng.normal(size=(4,)).astype(np.float32)), True),
    'latent.lerp': (lambda a, b: latent.lerp(a, b, 0.3),
                    lambda rng: (rng.normal(size=(4,)).astype(np.float32),
                                 rng.normal(size=(4,)).astype(np.float32)),
                    True),
    'latent.slerp': (lambda a, b: latent.slerp(a, b, 0.3),
                     lambda rng: (rng.normal(size=(4,)).astype(np.float32),
                                  rng.normal(size=(4,)).astype(np.float32)),
                     True),
    'pyramid.up_axis': (lambda x: pyramid.up_axis(x, -3, 2 * H - 1),
                        lambda rng: (_img(rng),), True),
    'pyramid.down_axis': _one(lambda x: pyramid.down_axis(x, -3)),
    'pyramid.gaussian_pyramid': _one(lambda x: pyramid.gaussian_pyramid(x, 3)),
    'pyramid.laplacian_pyramid': _one(
        lambda x: pyramid.laplacian_pyramid(x, 3)),
    'pyramid.pyr_down': _one(pyramid.pyr_down),
    'pyramid.pyr_up': _one(pyramid.pyr_up),
    'pyramid.reconstruct': _one(
        lambda x: pyramid.reconstruct(pyramid.laplacian_pyramid(x, 3))),
    'stitch.grid': _stack(functools.partial(stitch.grid, cols=2)),
    'stitch.hconcat': _stack(stitch.hconcat),
    'stitch.vconcat': _stack(stitch.vconcat),
    'warp.bilinear_sample': (
        lambda im, x, y: warp.bilinear_sample(im, x, y)[0],
        lambda rng: (_img(rng), rng.uniform(0, W - 1, (5,)).astype(
            np.float32), rng.uniform(0, H - 1, (5,)).astype(np.float32)),
        True),
    'warp.warp_perspective': (
        lambda im, h: warp.warp_perspective(im, h, (H, W)),
        lambda rng: (_img(rng), np.eye(3, dtype=np.float32) + rng.normal(
            0, 0.01, (3, 3)).astype(np.float32)), True),
}

# Registered ops without a spec here, and why.
_HOST = 'NumPy float64 on the host (sets of features, not images)'
NOT_TRANSFORMABLE = {
    'generative.class_accuracy': _HOST,
    'generative.feature_stats': _HOST,
    'generative.fid': _HOST,
    'generative.fid_from_stats': _HOST,
    'generative.kid': _HOST,
    'generative.knn_radii2': _HOST,
    'generative.labels_like': _HOST,
    'generative.mmd2_unbiased': _HOST,
    'generative.precision_recall': _HOST,
    'io.harmonise_channels': 'host-side list of differently shaped images',
}


def test_every_registered_op_is_checked_here():
  registered = set(test_op_properties.CASES)
  assert registered - set(SPECS) - set(NOT_TRANSFORMABLE) == set()
  assert (set(SPECS) | set(NOT_TRANSFORMABLE)) - registered == set()


def _close(a, b, msg):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(np.asarray(x, np.float64),
                               np.asarray(y, np.float64), rtol=2e-4,
                               atol=2e-5, err_msg=msg)


@pytest.mark.parametrize('name', sorted(SPECS))
def test_jit_equals_eager_and_vmap_equals_loop(name):
  fn, make, _ = SPECS[name]
  rng = np.random.default_rng(0)
  args = tuple(jnp.asarray(a) for a in make(rng))
  with jax.disable_jit():
    eager = fn(*args)
  _close(jax.jit(fn)(*args), eager, f'{name}: jit vs eager')
  batch = [tuple(jnp.asarray(a) for a in make(rng)) for _ in range(B)]
  stacked = tuple(jnp.stack(col) for col in zip(*batch))
  # Compiled: eager dispatch was checked above, and op by op (each
  # primitive compiled for its shapes) it dominated the suite's time.
  jitted = jax.jit(fn)
  looped = [jitted(*a) for a in batch]
  vmapped = jax.jit(jax.vmap(fn))(*stacked)
  for i, one in enumerate(looped):
    _close(jax.tree.map(lambda v, i=i: v[i], vmapped), one,
           f'{name}: vmap row {i} vs loop')


@pytest.mark.parametrize('name', sorted(k for k, v in SPECS.items() if v[2]))
def test_gradient_is_finite(name):
  fn, make, _ = SPECS[name]
  args = tuple(jnp.asarray(a) for a in make(np.random.default_rng(1)))

  def scalar(first):
    out = fn(first, *args[1:])
    return sum(jnp.sum(jnp.asarray(v, jnp.float32))
               for v in jax.tree.leaves(out))

  g = jax.jit(jax.grad(scalar))(args[0])
  assert np.all(np.isfinite(np.asarray(g))), f'{name}: non-finite gradient'


def test_constants_closed_over_by_the_callers_jit_are_still_checked():
  """A concrete array inside someone else's trace (a closed-over constant)
  gets the same clear errors as in an eager call, not a
  TracerBoolConversionError."""
  bad = jnp.full((8, 8, 3), jnp.nan)
  with pytest.raises(ValueError, match='NaN or Inf'):
    jax.jit(lambda w: blend.weighted_blend([bad, bad], w))(
        jnp.array([0.5, 0.5]))
  singular = jnp.zeros((3, 3))
  with pytest.raises(ValueError, match='singular'):
    jax.jit(lambda x: warp.warp_perspective(x, singular, (8, 8)))(
        jnp.ones((8, 8, 3)))
