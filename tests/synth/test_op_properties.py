"""Property tests for every public array op in gensynth.synth and
gensynth.metrics: random shapes, dtypes (uint8, uint16, int32, float16/32/64),
channel counts, NaN/Inf values, empty and single-pixel inputs, mismatched
sizes. Each call returns a finite result of the expected shape or raises a
ValueError with a message; anything else (an XLA error, a TypeError from deep
inside, NaN output) fails.

`test_every_public_op_is_covered` fails when a public function is added to one
of these modules without a case here (or a stated reason to leave it out).
"""

import inspect

import hypothesis.extra.numpy as hnp
import jax
import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from gensynth.metrics import generative
from gensynth.metrics import image as image_metrics
from gensynth.synth import blend
from gensynth.synth import checks
from gensynth.synth import features
from gensynth.synth import fusion
from gensynth.synth import homography
from gensynth.synth import io as synth_io
from gensynth.synth import keypoints
from gensynth.synth import latent
from gensynth.synth import learned
from gensynth.synth import pyramid
from gensynth.synth import panorama
from gensynth.synth import stitch
from gensynth.synth import warp

DTYPES = [np.uint8, np.uint16, np.int32, np.float16, np.float32, np.float64]
SIZES = [0, 1, 2, 3, 5, 8, 13]  # few distinct sizes: fewer compilations


def _values(draw, dtype, lo=0.0, hi=1.0):
  if np.issubdtype(dtype, np.integer):
    return st.integers(0, np.iinfo(dtype).max if dtype != np.int32 else 1000)
  width = np.dtype(dtype).itemsize * 8
  finite = st.floats(lo, hi, width=width)
  if draw(st.booleans()):
    return finite
  return st.one_of(finite, st.sampled_from([np.nan, np.inf, -np.inf]))


def _array(draw, shape, dtype=None, lo=0.0, hi=1.0):
  dtype = dtype or draw(st.sampled_from(DTYPES))
  return draw(hnp.arrays(dtype, shape, elements=_values(draw, dtype, lo, hi)))


def _image(draw, hw=None, channels=None, lead=()):
  h, w = hw or (draw(st.sampled_from(SIZES)), draw(st.sampled_from(SIZES)))
  c = channels or draw(st.sampled_from([1, 2, 3, 4]))
  return _array(draw, tuple(lead) + (h, w, c))


def _pair(draw):
  """Two images: usually the same shape, sometimes not."""
  a = _image(draw)
  b = _image(draw, a.shape[:2], a.shape[2]) if draw(st.integers(0, 3)) else (
      _image(draw))
  return a, b


def _weights(draw, n):
  return _array(draw, (n,), np.float32, -1.0, 2.0)


def _mask(draw, hw):
  return _array(draw, hw, np.float32)


def _points(draw, n):
  return _array(draw, (n, 2), np.float32, -50.0, 50.0)


def _latents(draw, lead=()):
  d = draw(st.sampled_from([0, 1, 3, 8]))
  return _array(draw, tuple(lead) + (d,), None, -3.0, 3.0)


def _feats(draw, n=None, d=None):
  n = n if n is not None else draw(st.sampled_from([0, 1, 2, 5, 12]))
  d = d if d is not None else draw(st.sampled_from([1, 2, 4]))
  return _array(draw, (n, d), None, -2.0, 2.0)


# Each case draws inputs and returns (call, expected output shape or None).
# Shapes are checked on the first output where the op returns several.
def _img1(fn, out_shape=lambda shape: shape):
  def case(draw):
    x = _image(draw)
    return (lambda: fn(x)), out_shape(x.shape)
  return case


def _one_channel(shape):
  return shape[:2] + (1,)


def _scalar_metric(fn, n_inputs):
  def case(draw):
    a, b = _pair(draw)
    args = (a, b, a)[:n_inputs]
    return (lambda: fn(*args)), ()
  return case


def _grey_metric(fn):
  def case(draw):
    x = _image(draw)
    return (lambda: fn(x)), ()
  return case


def _case_weighted_blend(draw):
  a, b = _pair(draw)
  w = _weights(draw, draw(st.sampled_from([1, 2, 3])))
  return (lambda: blend.weighted_blend([a, b], w)), a.shape


def _case_weighted_blend_into(draw):
  a, b = _pair(draw)
  w = _weights(draw, 2)
  dst = _array(draw, a.shape if draw(st.integers(0, 3)) else (2, 3, 1),
               np.float32)
  return (lambda: blend.weighted_blend_into(dst, [a, b], w)), a.shape


def _case_normalise_masks(draw):
  m = _array(draw, (draw(st.sampled_from([0, 1, 2, 3])),
                    draw(st.sampled_from(SIZES)), draw(st.sampled_from(SIZES))),
             None, -1.0, 2.0)
  return (lambda: blend.normalise_masks(m)), m.shape


def _case_multiband(draw):
  a, b = _pair(draw)
  m = _mask(draw, a.shape[:2] if draw(st.integers(0, 3)) else (3, 4))
  levels = draw(st.integers(-1, 5))
  return (lambda: blend.multiband_blend(
      [a, b], blend.two_image_masks(m), levels=levels)), a.shape


def _case_two_image_masks(draw):
  m = _mask(draw, (draw(st.sampled_from(SIZES)), draw(st.sampled_from(SIZES))))
  return (lambda: blend.two_image_masks(m)), (2,) + m.shape


def _case_feather(draw):
  v = _array(draw, (draw(st.sampled_from([0, 1, 2])),
                    draw(st.sampled_from(SIZES)), draw(st.sampled_from(SIZES)),
                    1))
  r = draw(st.integers(-2, 6))
  return (lambda: blend.feather_masks(v, radius=r)), v.shape


def _case_poisson(draw):
  a, b = _pair(draw)
  m = _mask(draw, a.shape[:2] if draw(st.integers(0, 3)) else (2, 9))
  return (lambda: blend.poisson_blend(a, b, m, maxiter=50)), b.shape


def _case_down_axis(draw):
  x = _image(draw)
  axis = draw(st.sampled_from([-3, -2]))
  want = list(x.shape)
  want[axis] = -(-want[axis] // 2)
  return (lambda: pyramid.down_axis(x, axis)), tuple(want)


def _case_up_axis(draw):
  x = _image(draw)
  axis = draw(st.sampled_from([-3, -2]))
  n = x.shape[axis]
  out = draw(st.sampled_from([2 * n, 2 * n - 1, 2 * n + 1]))
  want = list(x.shape)
  want[axis] = out
  return (lambda: pyramid.up_axis(x, axis, out)), tuple(want)


def _case_box_filter(draw):
  x = _image(draw)
  r = draw(st.integers(-1, 9))
  return (lambda: features.box_filter(x, r)), x.shape


def _case_colour_stats(draw):
  x = _image(draw)
  return (lambda: features.colour_stats(x)), x.shape[-1:]


def _case_mertens_weights(draw):
  x = _image(draw, lead=(draw(st.sampled_from([1, 2, 3])),))
  return (lambda: fusion.mertens_weights(x)), x.shape[:3] + (1,)


def _stack_case(fn, **kw):
  def case(draw):
    a, b = _pair(draw)
    return (lambda: fn([a, b], **kw)), a.shape
  return case


def _case_exposure(draw):
  a, b = _pair(draw)
  levels = draw(st.sampled_from([None, 0, 1, 3, 9]))
  return (lambda: fusion.exposure_fusion([a, b], levels=levels)), a.shape


def _case_weighted_pyramid(draw):
  a, b = _pair(draw)
  n = draw(st.sampled_from([2, 2, 2, 3]))
  w = _array(draw, (n,) + a.shape[:2], np.float32, -1.0, 2.0)
  levels = draw(st.sampled_from([None, 1, 3, 9]))
  return (lambda: fusion.weighted_pyramid_fusion([a, b], w, levels=levels)
          ), a.shape


def _case_mertens_quality(draw):
  x = _image(draw, lead=(draw(st.sampled_from([1, 2, 3])),))
  return (lambda: fusion.mertens_quality(x)), x.shape[:3]


def _case_multifocus(draw):
  a, b = _pair(draw)
  levels, radius, consistency = (draw(st.integers(0, 4)),
                                 draw(st.integers(-1, 3)),
                                 draw(st.integers(-1, 2)))
  return (lambda: fusion.multifocus_fusion(
      [a, b], levels=levels, radius=radius, consistency=consistency)), a.shape


def _case_distance(draw):
  binary = draw(st.booleans())
  d = draw(st.sampled_from([1, 4, 8]))
  a = _array(draw, (draw(st.sampled_from([0, 1, 4])), d))
  b = _array(draw, (draw(st.sampled_from([0, 1, 4])),
                    d if draw(st.integers(0, 3)) else d + 1))
  return (lambda: homography.distance_matrix(a, b, binary=binary)), (
      a.shape[0], b.shape[0])


def _case_match(draw):
  binary = draw(st.booleans())
  a = _array(draw, (draw(st.sampled_from([0, 1, 2, 6])), 4))
  b = _array(draw, (draw(st.sampled_from([0, 1, 2, 6])), 4))
  ratio = draw(st.sampled_from([-0.5, 0.0, 0.8, 1.0, 1.5]))
  return (lambda: homography.match(a, b, binary=binary, ratio=ratio)), (
      a.shape[0],)


def _case_apply_h(draw):
  h = _array(draw, (3, 3) if draw(st.integers(0, 3)) else (2, 3), None, -2.0,
             2.0)
  p = _points(draw, draw(st.sampled_from([0, 1, 5])))
  return (lambda: homography.apply_homography(h, p)), p.shape


def _case_fit_h(draw):
  n = draw(st.sampled_from([0, 3, 4, 8]))
  src, dst = _points(draw, n), _points(draw, n)
  w = _array(draw, (n,), np.float32)
  return (lambda: homography.fit_homography(src, dst, w)), (3, 3)


def _case_ransac(draw):
  n = draw(st.sampled_from([0, 3, 4, 10]))
  src, dst = _points(draw, n), _points(draw, n)
  valid = draw(hnp.arrays(np.bool_, (n,)))
  threshold = draw(st.sampled_from([-1.0, 0.0, 3.0]))
  return (lambda: homography.ransac_homography(
      jax.random.key(0), src, dst, valid, num_hypotheses=16,
      threshold=threshold)), (3, 3)


def _case_keypoints(draw):
  # Sizes around the smallest the detector accepts (2 * 16 + 1 pixels).
  hw = (draw(st.sampled_from([8, 33, 40])), draw(st.sampled_from([33, 48])))
  x = _image(draw, hw)
  k = draw(st.sampled_from([0, 5, 64]))
  return (lambda: keypoints.detect_and_describe(
      x, num_keypoints=k, num_scales=2)), (k, 2)


def _case_pyr_down(draw):
  x = _image(draw)
  return (lambda: pyramid.pyr_down(x)), None


def _case_pyr_up(draw):
  x = _image(draw)
  hw = draw(st.sampled_from([None, (2 * x.shape[0], 2 * x.shape[1]), (0, 3),
                             (-1, 4)]))
  want = None if hw is None else tuple(hw) + x.shape[-1:]
  return (lambda: pyramid.pyr_up(x, hw)), want


def _case_gaussian(draw):
  x = _image(draw)
  levels = draw(st.integers(-1, 5))
  return (lambda: pyramid.gaussian_pyramid(x, levels)), x.shape


def _case_laplacian_pyr(draw):
  x = _image(draw)
  levels = draw(st.integers(-1, 5))
  return (lambda: pyramid.laplacian_pyramid(x, levels)), x.shape


def _case_reconstruct(draw):
  x = _image(draw, hw=(8, 8))
  levels = draw(st.integers(1, 3))
  lap = [np.asarray(b) for b in pyramid.laplacian_pyramid(
      np.nan_to_num(x.astype(np.float32), posinf=1.0, neginf=0.0), levels)]
  want = (8, 8, x.shape[-1])
  if draw(st.booleans()):  # bands of the wrong sizes or channels
    lap[-1] = _image(draw)
    want = None if levels == 1 else want
  return (lambda: pyramid.reconstruct(lap)), want


def _concat_case(fn):
  def case(draw):
    a, b = _pair(draw)
    policy = draw(st.sampled_from(['error', 'pad', 'resize', 'bogus']))
    spacing = draw(st.integers(-1, 3))
    fill = draw(st.sampled_from([0.0, 1.0, np.nan]))
    return (lambda: fn([a, b], policy=policy, spacing=spacing, fill=fill)), None
  return case


def _case_grid(draw):
  a, b = _pair(draw)
  cols, policy = draw(st.integers(-1, 4)), draw(st.sampled_from(['pad',
                                                                 'error']))
  spacing = draw(st.integers(-1, 2))
  return (lambda: stitch.grid([a, b, a], cols=cols, policy=policy,
                              spacing=spacing)), None


def _case_bilinear(draw):
  img = _image(draw)
  n = draw(st.sampled_from([0, 1, 7]))
  x = _array(draw, (n,), np.float32, -3.0, 15.0)
  y = _array(draw, (n,) if draw(st.integers(0, 3)) else (n + 1,), np.float32,
             -3.0, 15.0)
  return (lambda: warp.bilinear_sample(img, x, y)), (n, img.shape[-1])


def _case_warp(draw):
  img = _image(draw)
  h = _array(draw, (3, 3), np.float32, -2.0, 2.0)
  hw = draw(st.sampled_from([(4, 6), (1, 1), (0, 3), (-2, 2)]))
  return (lambda: warp.warp_perspective(img, h, hw)), tuple(hw) + (
      img.shape[-1],)


def _case_harmonise(draw):
  a, b = _pair(draw)
  cs = {a.shape[-1], b.shape[-1]}
  c = (3 if cs & {3, 4} else 1) + (1 if cs & {2, 4} else 0)
  return (lambda: synth_io.harmonise_channels([a, b])[0]), a.shape[:2] + (c,)


def _case_lerp(fn):
  def case(draw):
    z0 = _latents(draw)
    z1 = _latents(draw) if not draw(st.integers(0, 3)) else _array(
        draw, z0.shape, None, -3.0, 3.0)
    t = _array(draw, (draw(st.sampled_from([0, 1, 4])),), np.float32,
               -0.5, 1.5)
    return (lambda: fn(z0, z1, t)), (t.shape[0],) + z0.shape
  return case


def _case_interpolate(draw):
  z0 = _latents(draw, lead=(2,))
  z1 = _array(draw, z0.shape, None, -3.0, 3.0)
  num = draw(st.integers(-1, 5))
  method = draw(st.sampled_from(['spherical', 'linear', 'cubic']))
  return (lambda: latent.interpolate(z0, z1, num, method=method)), (
      num,) + z0.shape


def _case_combine(draw):
  z = _latents(draw, lead=(draw(st.sampled_from([0, 1, 3])), 2))
  if draw(st.booleans()):
    w = _weights(draw, draw(st.sampled_from([1, 2, 3])))
    return (lambda: latent.combine_latents(z, weights=w)), z.shape[1:]
  m = _array(draw, (draw(st.sampled_from([1, 2, 3])), z.shape[-1]),
             np.float32)
  return (lambda: latent.combine_latents(z, masks=m)), z.shape[1:]


def _case_mef_ssim(draw):
  a, b = _pair(draw)
  return (lambda: image_metrics.mef_ssim([a, b], a)), ()


def _case_qabf_sources(draw):
  a, b = _pair(draw)
  srcs = [a, b, a][:draw(st.sampled_from([1, 2, 3]))]
  return (lambda: image_metrics.qabf_sources(srcs, a)), ()


def _case_feature_stats(draw):
  f = _feats(draw)
  return (lambda: generative.feature_stats(f)), f.shape[1:]


def _case_fid_from_stats(draw):
  d = draw(st.sampled_from([1, 2, 3]))
  mu1, mu2 = (_array(draw, (d,), None, -2, 2) for _ in range(2))
  s1, s2 = (_array(draw, (d, d) if draw(st.integers(0, 4)) else (d + 1, d),
                   None, -1, 2) for _ in range(2))
  return (lambda: generative.fid_from_stats(mu1, s1, mu2, s2)), ()


def _case_two_sets(fn, **kw):
  def case(draw):
    a = _feats(draw)
    b = _feats(draw, d=a.shape[1] if draw(st.integers(0, 3)) else None)
    return (lambda: fn(a, b, **kw)), None
  return case


def _case_knn(draw):
  f = _feats(draw)
  k = draw(st.integers(-1, 4))
  return (lambda: generative.knn_radii2(f, k=k)), f.shape[:1]


def _case_class_accuracy(draw):
  n = draw(st.sampled_from([0, 1, 6]))
  k = draw(st.sampled_from([0, 1, 3]))
  logits = _array(draw, (n, k if draw(st.integers(0, 3)) else k + 1), None,
                  -5, 5)
  requested = draw(hnp.arrays(np.int32, (n,), elements=st.integers(-1, 4)))
  return (lambda: generative.class_accuracy(logits, requested, k)), None


def _case_labels_like(draw):
  m = draw(st.sampled_from([0, 1, 6]))
  labels = draw(hnp.arrays(np.int32, (m,), elements=st.integers(-1, 4)))
  n = draw(st.sampled_from([-1, 0, 1, 7]))
  k = draw(st.sampled_from([0, 1, 3, 5]))
  return (lambda: generative.labels_like(labels, n, k)), (max(n, 0),)


CASES = {
    # gensynth.synth.blend
    'blend.weighted_blend': _case_weighted_blend,
    'blend.weighted_blend_into': _case_weighted_blend_into,
    'blend.normalise_masks': _case_normalise_masks,
    'blend.multiband_blend': _case_multiband,
    'blend.two_image_masks': _case_two_image_masks,
    'blend.feather_masks': _case_feather,
    'blend.poisson_blend': _case_poisson,
    # gensynth.synth.features
    'features.grey': _img1(features.grey, _one_channel),
    'features.box_filter': _case_box_filter,
    'features.laplacian': _img1(features.laplacian),
    'features.sobel': _img1(lambda x: features.sobel(x)[0]),
    'features.contrast': _img1(features.contrast, _one_channel),
    'features.saturation': _img1(features.saturation, _one_channel),
    'features.well_exposedness': _img1(features.well_exposedness,
                                       _one_channel),
    'features.local_energy': _img1(features.local_energy),
    'features.colour_stats': _case_colour_stats,
    # gensynth.synth.fusion
    'fusion.mertens_weights': _case_mertens_weights,
    'fusion.exposure_fusion': _case_exposure,
    'fusion.multifocus_fusion': _case_multifocus,
    'fusion.weighted_pyramid_fusion': _case_weighted_pyramid,
    'fusion.mertens_quality': _case_mertens_quality,
    'fusion.pyramid_max_abs_fusion': _stack_case(
        fusion.pyramid_max_abs_fusion, levels=2),
    'fusion.average_fusion': _stack_case(fusion.average_fusion),
    # gensynth.synth.homography
    'homography.distance_matrix': _case_distance,
    'homography.match': _case_match,
    'homography.apply_homography': _case_apply_h,
    'homography.fit_homography': _case_fit_h,
    'homography.ransac_homography': _case_ransac,
    # gensynth.synth.keypoints
    'keypoints.harris_response': _img1(keypoints.harris_response),
    'keypoints.detect_and_describe': _case_keypoints,
    # gensynth.synth.pyramid
    'pyramid.pyr_down': _case_pyr_down,
    'pyramid.down_axis': _case_down_axis,
    'pyramid.up_axis': _case_up_axis,
    'pyramid.pyr_up': _case_pyr_up,
    'pyramid.gaussian_pyramid': _case_gaussian,
    'pyramid.laplacian_pyramid': _case_laplacian_pyr,
    'pyramid.reconstruct': _case_reconstruct,
    # gensynth.synth.stitch
    'stitch.hconcat': _concat_case(stitch.hconcat),
    'stitch.vconcat': _concat_case(stitch.vconcat),
    'stitch.grid': _case_grid,
    # gensynth.synth.warp
    'warp.bilinear_sample': _case_bilinear,
    'warp.warp_perspective': _case_warp,
    # gensynth.synth.io (the array op; file IO is covered by the CLI tests)
    'io.harmonise_channels': _case_harmonise,
    # gensynth.synth.latent
    'latent.lerp': _case_lerp(latent.lerp),
    'latent.slerp': _case_lerp(latent.slerp),
    'latent.interpolate': _case_interpolate,
    'latent.combine_latents': _case_combine,
    # gensynth.metrics.image
    'image.psnr': _scalar_metric(image_metrics.psnr, 2),
    'image.ssim': _scalar_metric(image_metrics.ssim, 2),
    'image.qabf': _scalar_metric(image_metrics.qabf, 3),
    'image.mutual_information': _scalar_metric(
        image_metrics.mutual_information, 3),
    'image.entropy': _grey_metric(image_metrics.entropy),
    'image.spatial_frequency': _grey_metric(image_metrics.spatial_frequency),
    'image.average_gradient': _grey_metric(image_metrics.average_gradient),
    'image.standard_deviation': _grey_metric(
        image_metrics.standard_deviation),
    'image.mef_ssim': _case_mef_ssim,
    'image.qabf_sources': _case_qabf_sources,
    # gensynth.metrics.generative
    'generative.feature_stats': _case_feature_stats,
    'generative.fid_from_stats': _case_fid_from_stats,
    'generative.fid': _case_two_sets(generative.fid),
    'generative.mmd2_unbiased': _case_two_sets(generative.mmd2_unbiased),
    'generative.kid': _case_two_sets(generative.kid, num_subsets=3,
                                     subset_size=2),
    'generative.knn_radii2': _case_knn,
    'generative.precision_recall': _case_two_sets(generative.precision_recall,
                                                  k=1),
    'generative.class_accuracy': _case_class_accuracy,
    'generative.labels_like': _case_labels_like,
}

# Public functions without a case here, and why.
NOT_ARRAY_OPS = {
    'io.read_image': 'file IO: corrupt/truncated/16-bit files in the CLI tests',
    'io.write_image': 'file IO: tested in tests/launch/test_synth_cli.py',
    'io.output_bits': 'CLI --bits rule (test_cli_keeps_sixteen_bit_rgb)',
    'panorama.detect_orb': 'host-side scikit-image detector (test_panorama)',
    'panorama.stitch': 'host + device pipeline on photos (test_panorama)',
    'panorama.detect': 'stage of panorama.stitch (test_panorama)',
    'panorama.match': 'stage of panorama.stitch (test_panorama)',
    'panorama.order': 'host graph stage of panorama.stitch (test_panorama)',
    'panorama.estimate': 'host stage of panorama.stitch (test_panorama)',
    'panorama.canvas': 'host stage of panorama.stitch (test_panorama)',
    'panorama.footprints': 'host geometry for render (test_panorama)',
    'panorama.seam_region': 'host geometry for render (test_panorama)',
    'panorama.render': 'stage of panorama.stitch, against the '
                       'whole-canvas render (test_panorama)',
    'panorama.gain_factors': 'against a NumPy solve (test_keypoints)',
    'warp.bilinear_unchecked': 'bilinear_sample minus its checks (its case)',
    'features.taps': 'unchecked stencil on [..., H, W] arrays (with or '
                     'without a channel axis) for ops that check their input',
    'latent.vae_fuse': 'needs a trained VAE (tests/synth/test_latent.py)',
    'latent.vae_interpolate': 'needs a trained VAE (test_latent.py)',
    'pyramid.max_levels': 'integer helper on a (H, W) tuple',
    'learned.learned_fusion': 'needs a FusionNet and its parameters '
                              '(tests/synth/test_learned_fusion.py)',
    'learned.fusion_and_weights': 'needs a FusionNet (test_learned_fusion)',
    'keypoints.comparison_pattern': 'fixed-seed constant (test_keypoints)',
}

MODULES = {'blend': blend, 'features': features, 'fusion': fusion,
           'homography': homography, 'keypoints': keypoints,
           'pyramid': pyramid, 'stitch': stitch, 'panorama': panorama,
           'warp': warp, 'io': synth_io, 'latent': latent, 'learned': learned,
           'image': image_metrics, 'generative': generative}


def _public_functions():
  names = set()
  for mod_name, mod in MODULES.items():
    for name, fn in inspect.getmembers(mod, inspect.isfunction):
      if not name.startswith('_') and fn.__module__ == mod.__name__:
        names.add(f'{mod_name}.{name}')
  return names


def test_every_public_op_is_covered():
  public = _public_functions()
  assert not public - set(CASES) - set(NOT_ARRAY_OPS), (
      'public ops without a property case: '
      f'{sorted(public - set(CASES) - set(NOT_ARRAY_OPS))}')
  assert not (set(CASES) | set(NOT_ARRAY_OPS)) - public, 'stale entries'
  # checks.py holds the validators these ops share; it has no array ops.
  assert all(fn.__module__ == checks.__name__ for _, fn in
             inspect.getmembers(checks, inspect.isfunction)
             if not _.startswith('_'))


def _first(out):
  while isinstance(out, (tuple, list)):
    out = out[0]
  return out


def _check(call, want):
  try:
    out = call()
  except ValueError as e:
    assert str(e), 'a ValueError without a message'
    return
  for leaf in jax.tree.leaves(out):
    leaf = np.asarray(leaf)
    if leaf.dtype.kind in 'fc':
      assert np.all(np.isfinite(leaf)), 'non-finite output'
  if want is not None:
    assert np.shape(_first(out)) == tuple(want)


@pytest.mark.parametrize('name', sorted(CASES))
@settings(max_examples=12, deadline=None)
@given(data=st.data())
def test_op_returns_finite_or_raises_value_error(name, data):
  call, want = CASES[name](data.draw)
  _check(call, want)
