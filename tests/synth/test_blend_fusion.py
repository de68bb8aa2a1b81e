import cv2
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import skimage.data

from gensynth.synth import blend
from gensynth.synth import features
from gensynth.synth import fusion


def _pair(size=96):
  img = skimage.data.astronaut()[:size, :size].astype(np.float32) / 255
  other = skimage.data.chelsea()[:size, :size].astype(np.float32) / 255
  return img, other


def test_weighted_blend_matches_addweighted():
  a, b = _pair()
  ref = cv2.addWeighted(a, 0.3, b, 0.9, 0.05)
  out = jax.jit(blend.weighted_blend)([a, b], jnp.array([0.3, 0.9]), bias=0.05)
  np.testing.assert_allclose(out, ref, atol=1e-6)


def test_weighted_blend_into_reuses_a_donated_buffer():
  a, b = _pair()
  into = jax.jit(blend.weighted_blend_into, donate_argnums=0)
  dst = jnp.full(a.shape, jnp.nan, jnp.float32)  # values are never read
  ptr = dst.unsafe_buffer_pointer()
  for w in (0.2, 0.6):
    dst = into(dst, [a, b], jnp.array([w, 1 - w]), bias=0.01)
    np.testing.assert_allclose(dst, cv2.addWeighted(a, w, b, 1 - w, 0.01),
                               atol=1e-6)
    assert dst.unsafe_buffer_pointer() == ptr  # written in place
  with pytest.raises(ValueError, match=r'dst: shape \(3, 4, 3\)'):
    blend.weighted_blend_into(np.zeros((3, 4, 3), np.float32), [a, b],
                              [0.5, 0.5])


def test_weighted_blend_validates():
  a, b = _pair()
  with pytest.raises(ValueError, match=r'one weight per image'):
    blend.weighted_blend([a, b], [1.0])
  with pytest.raises(ValueError, match='must share one shape'):
    blend.weighted_blend([a, b[:50]], [0.5, 0.5])
  with pytest.raises(ValueError, match="dtype int64 unsupported"):
    blend.weighted_blend([a.astype(np.int64), b.astype(np.int64)], [1, 1])


def _opencv_multiband(a, b, mask, levels):
  ga, gb, gm = [a], [b], [mask]
  for _ in range(levels - 1):
    ga.append(cv2.pyrDown(ga[-1]))
    gb.append(cv2.pyrDown(gb[-1]))
    gm.append(cv2.pyrDown(gm[-1]))
  lap = lambda g: [x - cv2.pyrUp(y, dstsize=x.shape[1::-1])
                   for x, y in zip(g, g[1:])] + [g[-1]]
  out = [x * (1 - m[..., None]) + y * m[..., None]
         for x, y, m in zip(lap(ga), lap(gb), gm)]
  res = out[-1]
  for band in reversed(out[:-1]):
    res = band + cv2.pyrUp(res, dstsize=band.shape[1::-1])
  return res


def test_multiband_blend_matches_opencv_pipeline():
  a, b = _pair(100)
  mask = np.zeros((100, 100), np.float32)
  mask[:, 50:] = 1
  mask = cv2.GaussianBlur(mask, (0, 0), 3)
  out = jax.jit(blend.multiband_blend, static_argnames='levels')(
      jnp.stack([a, b]), blend.two_image_masks(mask), levels=5)
  np.testing.assert_allclose(out, _opencv_multiband(a, b, mask, 5), atol=1e-5)
  # Far from the seam the sources come through.
  np.testing.assert_allclose(out[:, :10], a[:, :10], atol=0.03)
  np.testing.assert_allclose(out[:, -10:], b[:, -10:], atol=0.03)


def test_multiband_blend_batched_equals_vmapped():
  a, b = _pair(64)
  x = jnp.stack([jnp.stack([a, b]), jnp.stack([b, a])], axis=1)  # [2, B=2, ...]
  m = jnp.broadcast_to(jnp.linspace(0, 1, 64)[None, None, None, :, None],
                       (2, 2, 64, 64, 1))
  # Jitted: op by op, the pyramids' many small slices take ~40 s here.
  batched = jax.jit(lambda x, m: blend.multiband_blend(x, m, levels=4))(x, m)
  single = jax.jit(jax.vmap(
      lambda xx, mm: blend.multiband_blend(xx, mm, levels=4),
      in_axes=(1, 1)))(x, m)
  np.testing.assert_allclose(batched, single, atol=1e-6)


def test_multiband_mask_validation():
  a, b = _pair(32)
  with pytest.raises(ValueError, match='masks: shape'):
    blend.multiband_blend([a, b], jnp.zeros((2, 16, 16)), levels=2)
  with pytest.raises(ValueError, match='2 masks for 3 images'):
    blend.multiband_blend([a, b, a], jnp.zeros((2, 32, 32)), levels=2)


@pytest.mark.parametrize('weights', [(1.0, 1.0, 0.0), (1.0, 1.0, 1.0),
                                     (0.5, 2.0, 1.0)])
def test_exposure_fusion_matches_opencv(weights):
  base = skimage.data.coffee()[:120, :160]
  stack = [np.clip(base.astype(np.float32) * s, 0, 255).astype(np.uint8)
           for s in (0.4, 1.0, 2.2)]
  ref = cv2.createMergeMertens(*weights).process(stack)
  out = jax.jit(lambda s: fusion.exposure_fusion(
      s, contrast_weight=weights[0], saturation_weight=weights[1],
      exposure_weight=weights[2]))(jnp.stack(stack))
  # Float rounding of near-zero weights moves a handful of pixels slightly.
  err = np.abs(np.asarray(out) - ref)
  assert np.quantile(err, 0.999) < 5e-5 and err.max() < 1e-3


def test_multifocus_picks_the_sharp_source():
  img = skimage.data.camera()[:128, :128].astype(np.float32)[..., None] / 255
  blurred = cv2.GaussianBlur(img, (0, 0), 3)[..., None]
  left = np.concatenate([img[:, :64], blurred[:, 64:]], 1)
  right = np.concatenate([blurred[:, :64], img[:, 64:]], 1)
  fused = np.asarray(fusion.multifocus_fusion([left, right], levels=4))
  inner = (slice(8, -8), slice(8, -8))
  err = np.abs(fused - img)[inner].mean()
  avg_err = np.abs((left + right) / 2 - img)[inner].mean()
  assert err < 0.3 * avg_err
  base = np.asarray(fusion.pyramid_max_abs_fusion([left, right], levels=4))
  assert err <= np.abs(base - img)[inner].mean() + 1e-4


def test_features_match_opencv():
  x = skimage.data.astronaut()[:64, :64].astype(np.float32) / 255
  g = cv2.cvtColor(x, cv2.COLOR_RGB2GRAY)
  np.testing.assert_allclose(features.grey(x)[..., 0], g, atol=1e-6)
  np.testing.assert_allclose(features.laplacian(g[..., None])[..., 0],
                             cv2.Laplacian(g, cv2.CV_32F), atol=1e-5)
  gx, gy = features.sobel(g[..., None])
  np.testing.assert_allclose(gx[..., 0], cv2.Sobel(g, cv2.CV_32F, 1, 0),
                             atol=1e-5)
  np.testing.assert_allclose(gy[..., 0], cv2.Sobel(g, cv2.CV_32F, 0, 1),
                             atol=1e-5)
  np.testing.assert_allclose(
      features.box_filter(x, 2),
      cv2.blur(x, (5, 5), borderType=cv2.BORDER_REFLECT_101), atol=1e-6)
  mean, std = features.colour_stats(x)
  np.testing.assert_allclose(mean, x.mean((0, 1)), rtol=1e-5)
  np.testing.assert_allclose(std, x.std((0, 1)), rtol=1e-4)
