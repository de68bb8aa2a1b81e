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


@pytest.mark.parametrize('bits', [256, 100, 7])
def test_packed_hamming_equals_the_product_form(bits):
  rng = np.random.default_rng(bits)
  a = rng.random((50, bits)) < 0.5
  b = rng.random((70, bits)) < 0.5
  packed = homography.distance_matrix(a, b, binary=True)  # bool: popcount
  product = homography.distance_matrix(a.astype(np.float32),
                                       b.astype(np.float32), binary=True)
  want = (a[:, None, :] != b[None, :, :]).sum(-1)
  np.testing.assert_array_equal(np.asarray(packed), want)
  np.testing.assert_array_equal(np.asarray(packed), np.asarray(product))
  assert packed.dtype == np.float32


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


def test_uint8_photos_stay_integers_to_the_device_with_the_same_panorama():
  a, b = _views()
  u8 = [(x * 255).round().astype(np.uint8) for x in (b, a)]
  key = jax.random.key(0)
  # The device scales by multiplying with float32(1 / 255), as every op does
  # inside jit: the same panorama as float input scaled that way on the host.
  want = panorama.stitch([x * np.float32(1 / 255) for x in u8], key=key)
  got = panorama.stitch(u8, key=key)
  np.testing.assert_array_equal(got.image, want.image)
  np.testing.assert_array_equal(got.valid, want.valid)
  np.testing.assert_array_equal(np.stack(got.homographies),
                                np.stack(want.homographies))
  # Scaled to [0, 1] (gains and the blend may overshoot a little), not 255.
  assert got.image.dtype == np.float32 and 0.9 < got.image.max() < 1.1
  # Mixed dtypes and the host detector take the float path on the host.
  mixed = panorama.stitch([u8[0], u8[1].astype(np.float32) / 255], key=key)
  assert mixed.image.shape == want.image.shape
  assert panorama._check_images(u8, 'orb', 'feather')[0].dtype == np.float32
  assert panorama._check_images(u8, 'harris', 'feather')[0].dtype == np.uint8


def test_images_of_an_unsupported_dtype_are_named():
  a, b = _views()
  with pytest.raises(ValueError, match=r'images\[1\]: dtype int32 unsupported'):
    panorama.stitch([a, (b * 255).astype(np.int32)], key=jax.random.key(0))


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


def _three_view_render_inputs():
  """Three overlapping views of one scene and their canvas homographies
  (known, not estimated), as `stitch` hands them to `render`."""
  scene = skimage.data.astronaut().astype(np.float32) / 255
  shifts = [(0.0, 0.0), (150.0, 20.0), (300.0, -10.0)]
  views, homs = [], []
  for i, (dx, dy) in enumerate(shifts):
    to_scene = np.array([[1.0, 0.02 * i, dx], [-0.01 * i, 1.0, dy + 40],
                         [2e-5 * i, 0.0, 1.0]])
    v, _ = warp.warp_perspective(scene, np.linalg.inv(to_scene).astype(
        np.float32), (300, 200))
    views.append(np.asarray(v))
    homs.append(to_scene)
  sizes = [v.shape[:2] for v in views]
  homs, out_hw = panorama.canvas(sizes, homs)
  return (views, np.stack(homs).astype(np.float32)), sizes, homs, out_hw


@pytest.mark.parametrize('blend', ['multiband', 'none'])
def test_render_in_footprints_and_seam_region_equals_whole_canvas(blend):
  args, sizes, homs, out_hw = _three_view_render_inputs()
  boxes = panorama.footprints(sizes, homs, out_hw)
  region = panorama.seam_region(boxes, out_hw, 3)
  # The seams need less than the whole canvas here, so the shortcut runs.
  assert region is not None and region[2] * region[3] < out_hw[0] * out_hw[1]
  assert region[0] % 8 == 0 and region[1] % 8 == 0
  kw = dict(out_hw=out_hw, blend=blend, levels=3, gain_compensation=True)
  whole, cover = panorama.render(*args, **kw)
  fast, fast_cover = panorama.render(*args, boxes=boxes, **kw)
  np.testing.assert_array_equal(fast_cover, cover)
  np.testing.assert_allclose(fast, whole, atol=2e-5)
  # Every covered pixel lies inside its image's footprint.
  for (y0, x0, bh, bw), (h, w), hom in zip(boxes, sizes, homs):
    ys, xs = np.mgrid[:out_hw[0], :out_hw[1]]
    p = np.stack([xs, ys, np.ones_like(xs)], -1) @ np.linalg.inv(hom).T
    sx, sy = p[..., 0] / p[..., 2], p[..., 1] / p[..., 2]
    inside = (sx >= 0) & (sy >= 0) & (sx <= w - 1) & (sy <= h - 1)
    yy, xx = np.nonzero(inside)
    assert yy.min() >= y0 and yy.max() < y0 + bh
    assert xx.min() >= x0 and xx.max() < x0 + bw


def test_seam_region_is_none_without_overlaps_or_when_it_is_everything():
  assert panorama.seam_region(((0, 0, 10, 10), (20, 20, 10, 10)), (40, 40),
                              2) is None
  assert panorama.seam_region(((0, 0, 40, 30), (0, 10, 40, 30)), (40, 40),
                              2) is None  # the margin reaches every edge
  y0, x0, h, w = panorama.seam_region(
      ((0, 0, 500, 300), (0, 250, 500, 300)), (500, 550), 2)
  # shared columns 250..300, 8 * 2^2 = 32 pixels either side, from a
  # multiple of 2^2
  assert (y0, h) == (0, 500) and x0 == 216 and x0 + w == 332
