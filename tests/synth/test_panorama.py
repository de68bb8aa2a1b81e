import jax
import numpy as np
import pytest
import skimage.data

from gensynth.synth import homography
from gensynth.synth import panorama
from gensynth.synth import warp

# Scene -> view B: a small rotation, scale and shift.
_ANG = np.deg2rad(4.0)
H_B = np.array([[1.02 * np.cos(_ANG), -np.sin(_ANG), -150.0],
                [np.sin(_ANG), 1.02 * np.cos(_ANG), -20.0],
                [1e-5, 0.0, 1.0]])


def _views():
  scene = skimage.data.astronaut().astype(np.float32) / 255
  a = scene[:360, :330]
  b, _ = warp.warp_perspective(scene, H_B.astype(np.float32), (360, 330))
  return a, np.asarray(b)


def test_warp_matches_skimage():
  from skimage import transform  # pylint: disable=g-import-not-at-top
  img = skimage.data.camera()[:64, :80].astype(np.float32)[..., None] / 255
  h = np.array([[1.1, 0.1, -3], [0.05, 0.9, 4], [1e-4, 2e-4, 1]])
  out, valid = warp.warp_perspective(img, h.astype(np.float32), (64, 80))
  ref = transform.warp(img[..., 0], transform.ProjectiveTransform(h).inverse,
                       order=1, output_shape=(64, 80), cval=0)
  inner = np.asarray(valid[..., 0]) > 0
  inner[:, 0] = inner[:, -1] = inner[0] = inner[-1] = False
  np.testing.assert_allclose(np.asarray(out)[..., 0][inner], ref[inner],
                             atol=1e-4)


def test_ransac_recovers_known_homography_with_outliers():
  rng = np.random.default_rng(0)
  src = rng.uniform(0, 500, (300, 2)).astype(np.float32)
  dst = np.asarray(homography.apply_homography(H_B, src))
  dst = dst + rng.normal(0, 0.3, dst.shape).astype(np.float32)
  bad = rng.random(300) < 0.4
  dst[bad] = rng.uniform(0, 500, (bad.sum(), 2))
  h, inliers, rmse = jax.jit(homography.ransac_homography)(
      jax.random.key(0), src, dst, np.ones(300, bool))
  corners = np.array([[0, 0], [500, 0], [0, 500], [500, 500]], np.float32)
  err = np.linalg.norm(np.asarray(homography.apply_homography(h, corners)) -
                       np.asarray(homography.apply_homography(H_B, corners)),
                       axis=1)
  assert err.mean() < 1.0
  assert np.asarray(inliers)[~bad].mean() > 0.97
  assert np.asarray(inliers)[bad].mean() < 0.05
  assert float(rmse) < 1.0


def test_matching_is_mutual_and_ratio_tested():
  rng = np.random.default_rng(1)
  a = rng.random((50, 256)) < 0.5
  perm = rng.permutation(50)
  b = a[perm].copy()
  idx, valid = homography.match(a, b, binary=True)
  assert np.all(np.asarray(valid))
  np.testing.assert_array_equal(perm[np.asarray(idx)], np.arange(50))
  dup = np.concatenate([b, b[:1]])  # a duplicate defeats the ratio test
  _, valid = homography.match(a, dup, binary=True)
  assert not bool(np.asarray(valid)[perm[0]])


def _match_reference(a, b, ratio, valid_a, valid_b):
  """Brute force in NumPy: sort each row, ratio test, mutual check."""
  d = (a[:, None, :] != b[None, :, :]).sum(-1).astype(np.float64)
  d[:, ~valid_b] = np.inf
  d[~valid_a] = np.inf
  order = np.argsort(d, axis=1, kind='stable')
  best = d[np.arange(len(a)), order[:, 0]]
  second = d[np.arange(len(a)), order[:, 1]]
  ok = np.isfinite(best) & (best < ratio * second)
  back = np.argmin(d, axis=0)
  ok &= back[order[:, 0]] == np.arange(len(a))
  return order[:, 0], ok


def test_matching_equals_brute_force_with_ties_and_padding():
  rng = np.random.default_rng(2)
  # Short descriptors make tied distances common.
  a = rng.random((120, 16)) < 0.5
  b = np.concatenate([a[rng.permutation(120)[:90]], rng.random((40, 16)) < .5])
  b[:90] ^= rng.random((90, 16)) < 0.05
  valid_a, valid_b = rng.random(120) < 0.9, rng.random(130) < 0.9
  idx, ok = homography.match(a, b, binary=True, ratio=0.8, valid_a=valid_a,
                             valid_b=valid_b)
  want_idx, want_ok = _match_reference(a, b, 0.8, valid_a, valid_b)
  np.testing.assert_array_equal(np.asarray(ok), want_ok)
  assert want_ok.sum() > 20  # the case is not vacuous
  np.testing.assert_array_equal(np.asarray(idx)[want_ok], want_idx[want_ok])


def test_panorama_of_two_views_recovers_geometry():
  a, b = _views()
  pano = panorama.stitch([b, a], key=jax.random.key(0), blend='feather')
  assert pano.pairs[0]['inliers'] >= 50 and pano.pairs[0]['rmse_px'] < 1.5
  # Map A's corners into B through the canvas homographies; compare to truth.
  h_ab = np.linalg.inv(pano.homographies[0]) @ pano.homographies[1]
  corners = np.array([[0, 0], [329, 0], [0, 359], [329, 359]], np.float32)
  got = np.asarray(homography.apply_homography(h_ab, corners))
  want = np.asarray(homography.apply_homography(H_B, corners))
  assert np.linalg.norm(got - want, axis=1).mean() < 2.0
  assert pano.image.shape[0] >= 360 and pano.image.shape[1] > 330
  assert pano.valid.mean() > 0.6


def test_non_overlapping_inputs_name_the_image():
  a, _ = _views()
  other = np.asarray(skimage.data.coffee()[:300, :300], np.float32) / 255
  with pytest.raises(ValueError, match=r'image \d does not overlap'):
    panorama.stitch([a, a[:, ::-1].copy(), other], key=jax.random.key(0),
                    min_inliers=40)


def test_canvas_guard_refuses_huge_canvas():
  a, b = _views()
  with pytest.raises(ValueError, match=r'canvas would be .* Mpx \(limit 0 Mpx\)'):
    panorama.stitch([a, b], key=jax.random.key(0), max_canvas_pixels=1000)


def test_panorama_cli(tmp_path):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from tests import helpers  # pylint: disable=g-import-not-at-top
  a, b = _views()
  for name, x in (('a.png', a), ('b.png', b)):
    Image.fromarray((x * 255).round().astype(np.uint8)).save(tmp_path / name)
  # The host ORB detector here; the library tests use the default (device).
  proc = helpers.run_launch('stitch', '--mode=panorama', '--blend=feather',
                            '--detector=orb',
                            f'--inputs={tmp_path}/a.png,{tmp_path}/b.png',
                            f'--output={tmp_path}/p.png')
  assert 'panorama: 2 images' in proc.stdout and '"inliers"' in proc.stdout
  assert np.asarray(Image.open(tmp_path / 'p.png')).shape[1] > 330
