"""On-device keypoints (gensynth.synth.keypoints) and the panorama compositor."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import skimage.data
from skimage import transform

from gensynth.synth import homography
from gensynth.synth import keypoints
from gensynth.synth import panorama
from gensynth.synth import xla_hints


def _astronaut():
  return skimage.data.astronaut().astype(np.float32) / 255


@pytest.mark.parametrize('shape,hw', [((37, 53), (20, 31)),
                                      ((2, 64, 48), (45, 40)),
                                      ((30, 20), (41, 27))])
def test_resize_equals_jax_image_resize(shape, hw):
  x = jax.random.uniform(jax.random.key(0), shape)
  # pylint: disable-next=protected-access
  got = jax.jit(keypoints._resize, static_argnums=1)(x, hw)
  want = jax.image.resize(x, shape[:-2] + hw, 'linear', antialias=True)
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-5)


def test_harris_peaks_at_the_corners_of_a_square():
  img = np.zeros((64, 64, 1), np.float32)
  img[20:44, 16:40] = 1.0
  r = np.asarray(keypoints.harris_response(img))[..., 0]
  # The 4 strongest 5x5-separated maxima sit on the square's corners.
  corners = {(20, 16), (20, 39), (43, 16), (43, 39)}
  found = []
  r = r.copy()
  for _ in range(4):
    y, x = np.unravel_index(np.argmax(r), r.shape)
    found.append((y, x))
    r[max(0, y - 5):y + 6, max(0, x - 5):x + 6] = -np.inf
  for y, x in found:
    assert min(abs(y - cy) + abs(x - cx) for cy, cx in corners) <= 2, found
  # Edges and flat areas respond weakly or negatively.
  full = np.asarray(keypoints.harris_response(img))[..., 0]
  assert full[32, 16] < 0.1 * full.max() and abs(full[5, 5]) < 1e-9


def test_comparison_pattern_is_fixed_and_inside_the_patch():
  a, b = keypoints.comparison_pattern(), keypoints.comparison_pattern()
  np.testing.assert_array_equal(a, b)
  assert a.shape == (256, 2, 2)
  assert np.hypot(a[..., 0], a[..., 1]).max() <= keypoints.PATCH_RADIUS - 2
  assert np.any(a[:, 0] != a[:, 1], axis=-1).all()  # no degenerate pair


def test_keypoints_follow_a_translation():
  scene = _astronaut()
  a, b = scene[40:296, 30:330], scene[57:313, 41:341]  # b = a shifted (11, 17)
  det = jax.jit(keypoints.detect_and_describe,
                static_argnames=('num_keypoints',))
  xa, da, oka, _ = det(a, num_keypoints=500)
  xb, db, okb, _ = det(b, num_keypoints=500)
  assert int(oka.sum()) > 450 and int(okb.sum()) > 450
  idx, ok = homography.match(da, db, binary=True, valid_a=oka, valid_b=okb)
  ok = np.asarray(ok)
  shift = np.asarray(xa)[ok] - np.asarray(xb)[np.asarray(idx)[ok]]
  assert ok.sum() > 100
  # Matches move by the shift: exactly on the finest level, within the
  # resampling error on the coarser ones (measured: 88% < 0.5 px, 96% < 1).
  err = np.linalg.norm(shift - np.array([11.0, 17.0]), axis=1)
  assert (err < 0.5).mean() > 0.8 and (err < 1.0).mean() > 0.93, err


def test_keypoints_register_a_rotated_and_scaled_view():
  scene = _astronaut()[:, :, :3]
  angle = 30.0
  rot = transform.SimilarityTransform(scale=0.9, rotation=np.deg2rad(angle),
                                      translation=(120, -90))
  view = transform.warp(scene, rot.inverse, output_shape=scene.shape[:2],
                        order=1).astype(np.float32)
  det = jax.jit(keypoints.detect_and_describe)
  xa, da, oka, _ = det(scene)
  xb, db, okb, _ = det(view)
  idx, ok = homography.match(da, db, binary=True, valid_a=oka, valid_b=okb)
  h, inliers, rmse = homography.ransac_homography(
      jax.random.key(0), xa, jnp.asarray(xb)[idx], ok)
  assert int(inliers.sum()) > 60 and float(rmse) < 1.5
  pts = np.array([[100, 100], [400, 120], [250, 380]], np.float32)
  got = np.asarray(homography.apply_homography(h, pts))
  np.testing.assert_allclose(got, rot(pts), atol=1.5)


def test_flat_image_has_no_keypoints():
  det = jax.jit(keypoints.detect_and_describe,
                static_argnames=('num_keypoints',))
  xy, desc, ok, score = det(np.full((80, 90, 3), 0.5, np.float32),
                            num_keypoints=50)
  assert xy.shape == (50, 2) and desc.shape == (50, 256)
  assert not bool(ok.any()) and not bool(desc.any())
  assert np.all(np.asarray(xy) == 0) and np.all(np.asarray(score) == 0)


def test_detector_rejects_bad_input():
  with pytest.raises(ValueError, match='too small'):
    keypoints.detect_and_describe(np.zeros((20, 200, 3), np.float32))
  with pytest.raises(ValueError, match=r'one \[H, W, C\] image'):
    keypoints.detect_and_describe(np.zeros((2, 64, 64, 3), np.float32))
  with pytest.raises(ValueError, match='2 channels'):
    keypoints.detect_and_describe(np.zeros((64, 64, 2), np.float32))
  with pytest.raises(ValueError, match='scale_factor'):
    keypoints.detect_and_describe(np.zeros((64, 64, 1), np.float32),
                                  scale_factor=1.0)


def test_materialise_keeps_values_and_gradients():
  tree = {'f': jnp.arange(6.0).reshape(2, 3) - 2.0,
          'b': jnp.array([True, False]), 'i': jnp.array([3, -1])}
  out = jax.jit(xla_hints.materialise)(tree)
  for k in tree:
    np.testing.assert_array_equal(np.asarray(out[k]), np.asarray(tree[k]))
    assert out[k].dtype == tree[k].dtype
  g = jax.grad(lambda x: jnp.sum(xla_hints.materialise(x)**2))(tree['f'])
  np.testing.assert_allclose(np.asarray(g), 2 * np.asarray(tree['f']))
  nan = jnp.array([jnp.nan, 1.0])  # the other branch returns it unchanged too
  np.testing.assert_array_equal(np.asarray(xla_hints.materialise(nan)),
                                np.asarray(nan))


def _gains_reference(grey, covered, sigma_n=10.0 / 255, sigma_g=0.1):
  """Brown & Lowe's gain equations built pair by pair in NumPy."""
  n = len(grey)
  a, b = np.zeros((n, n)), np.zeros(n)
  for i in range(n):
    for j in range(n):
      ov = covered[i] & covered[j]
      if i == j or not ov.any():
        continue
      mi, mj, cnt = grey[i][ov].mean(), grey[j][ov].mean(), ov.sum()
      a[i, i] += cnt * (mi * mi / sigma_n**2 + 1 / sigma_g**2)
      a[i, j] -= cnt * mi * mj / sigma_n**2
      b[i] += cnt / sigma_g**2
  iso = np.diag(a) == 0
  a[iso, :] = 0
  a[:, iso] = 0
  a[iso, iso] = 1.0
  b[iso] = 1.0
  return np.linalg.solve(a, b)


def test_gain_factors_equal_pairwise_reference():
  rng = np.random.default_rng(0)
  n, p = 4, 3000
  covered = np.zeros((n, p), bool)
  covered[0, :1200] = covered[1, 800:2000] = covered[2, 1700:] = True
  covered[3, 2900:] = False  # image 3 overlaps nothing: gain 1
  grey = rng.uniform(0.2, 0.8, (n, p)).astype(np.float32)
  grey[1] *= 1.3  # a brighter exposure
  got = np.asarray(panorama.gain_factors(jnp.asarray(grey),
                                        jnp.asarray(covered)))
  np.testing.assert_allclose(got, _gains_reference(grey, covered), rtol=1e-4)
  assert got[1] < got[0] and got[3] == 1.0


def _two_views():
  scene = _astronaut()
  h_b = np.array([[1.0, 0.0, -150.0], [0.0, 1.0, -20.0], [0.0, 0.0, 1.0]])
  a = scene[:360, :330]
  b = scene[20:380, 150:480]
  return scene, a, b, h_b


@pytest.mark.parametrize('blend', ['multiband', 'feather', 'none'])
def test_panorama_reproduces_the_scene_without_seams(blend):
  # Two crops of one photo: every blend must give back the photo itself
  # (a dark seam or halo from the blending would show as a large error).
  scene, a, b, _ = _two_views()
  pano = panorama.stitch([a, b], key=jax.random.key(0), blend=blend,
                         gain_compensation=False)
  h = pano.homographies[0]  # a -> canvas: a translation here
  ox, oy = int(round(h[0, 2])), int(round(h[1, 2]))
  region = pano.image[oy:oy + 380, ox:ox + 480]
  want = scene[:region.shape[0], :region.shape[1]]
  cover = pano.valid[oy:oy + 380, ox:ox + 480]
  err = np.abs(region - want)[cover]
  assert cover.mean() > 0.8
  assert np.median(err) < 0.01 and np.percentile(err, 99) < 0.1, (
      np.median(err), np.percentile(err, 99))


def test_panorama_gains_equalise_an_exposure_change():
  scene, a, b, _ = _two_views()
  pano = panorama.stitch([a, np.clip(b * 0.7, 0, 1)], key=jax.random.key(0))
  h = pano.homographies[0]
  ox, oy = int(round(h[0, 2])), int(round(h[1, 2]))
  # Left (only a) and right (only the darkened b) ends keep similar levels.
  left = pano.image[oy + 50:oy + 300, ox + 10:ox + 100].mean()
  right = pano.image[oy + 50:oy + 300, ox + 400:ox + 470].mean()
  plain = panorama.stitch([a, np.clip(b * 0.7, 0, 1)], key=jax.random.key(0),
                          gain_compensation=False)
  right_plain = plain.image[oy + 50:oy + 300, ox + 400:ox + 470].mean()
  want = scene[50:300, 400:470].mean()
  # Brown & Lowe's prior keeps gains near 1, so both images move: compare the
  # brightness ratio of the two ends with the scene's, with and without.
  want_ratio = want / scene[50:300, 10:100].mean()
  left_plain = plain.image[oy + 50:oy + 300, ox + 10:ox + 100].mean()
  # Its prior (sigma_g = 0.1, as in OpenCV) leaves part of the step; measured
  # ratios 0.92 with gains, 0.72 without, 1.03 in the scene.
  got, plain_ratio = right / left, right_plain / left_plain
  assert abs(got - want_ratio) < 0.5 * abs(plain_ratio - want_ratio), (
      got, plain_ratio, want_ratio)
