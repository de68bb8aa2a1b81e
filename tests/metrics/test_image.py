import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import skimage.data
import skimage.measure
import skimage.metrics
from scipy import ndimage

from gensynth.metrics import image as M


def _pair():
  a = skimage.data.astronaut()[:96, :96].astype(np.float32) / 255
  noise = np.random.default_rng(0).normal(0, 0.05, a.shape).astype(np.float32)
  return a, np.clip(a + noise, 0, 1)


def test_psnr_and_ssim_match_skimage():
  a, b = _pair()
  np.testing.assert_allclose(
      M.psnr(a, b), skimage.metrics.peak_signal_noise_ratio(a, b, data_range=1),
      rtol=1e-5)
  ref = skimage.metrics.structural_similarity(
      a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
      data_range=1.0, channel_axis=-1)
  np.testing.assert_allclose(jax.jit(M.ssim)(a, b), ref, atol=1e-5)
  np.testing.assert_allclose(M.ssim(a, a), 1.0, atol=1e-6)
  batch = np.stack([a, b])
  np.testing.assert_allclose(M.ssim(batch, batch[::-1]),
                             [M.ssim(a, b), M.ssim(b, a)], atol=1e-6)


def test_ssim_rejects_small_images():
  with pytest.raises(ValueError, match='at least 11x11'):
    M.ssim(np.zeros((8, 8, 1), np.float32), np.zeros((8, 8, 1), np.float32))


def _qabf_numpy(a, b, f):
  """Independent NumPy/SciPy Q^AB/F (reflect-101 Sobel via mode='mirror')."""
  def edge(x):
    gx = ndimage.sobel(x, axis=1, mode='mirror')
    gy = ndimage.sobel(x, axis=0, mode='mirror')
    g = np.hypot(gx, gy)
    with np.errstate(divide='ignore', invalid='ignore'):
      ang = np.where(gx == 0, np.where(gy == 0, 0, np.pi / 2), np.arctan(gy / gx))
    return g, ang

  def q(gs, as_, gf, af):
    with np.errstate(divide='ignore', invalid='ignore'):
      r = np.where(gs > gf, gf / gs, np.where(gs == gf, 1.0, gs / gf))
    al = 1 - np.abs(as_ - af) / (np.pi / 2)
    return (0.9994 / (1 + np.exp(-15 * (r - 0.5)))) * (
        0.9879 / (1 + np.exp(-22 * (al - 0.8))))
  (ga, aa), (gb, ab), (gf, af) = edge(a), edge(b), edge(f)
  return ((q(ga, aa, gf, af) * ga + q(gb, ab, gf, af) * gb).sum() /
          (ga + gb).sum())


def test_qabf_against_numpy_and_known_value():
  a = skimage.data.camera()[:80, :80].astype(np.float64)
  b = ndimage.gaussian_filter(a, 2)
  f = 0.5 * (a + b)
  out = M.qabf(a[..., None] / 255, b[..., None] / 255, f[..., None] / 255)
  np.testing.assert_allclose(out, _qabf_numpy(a, b, f), rtol=1e-4)
  perfect = 0.9994 / (1 + math.exp(-7.5)) * 0.9879 / (1 + math.exp(-4.4))
  x = a[..., None] / 255
  np.testing.assert_allclose(M.qabf(x, x, x), perfect, rtol=1e-5)
  assert float(M.qabf(x, b[..., None] / 255, x)) > float(out)


def test_qabf_gradient_is_finite_where_a_sobel_component_is_tiny():
  """Rows that change only downwards (gx = 0, orientation pi/2), tilted by
  t = 1e-30 across: the orientation's gradient must stay finite (arctan of
  gy / gx overflowed to a NaN gradient there), and equal the one at t = 0."""
  ramp = np.tile(np.arange(20.0)[:, None] ** 2 / 400, (1, 20))

  def q(t):
    img = jnp.stack([ramp + t * np.arange(20.0)[None, :]] * 3, -1)
    return M.qabf(img, img * 0.9, img)

  grads = [float(jax.grad(q)(t)) for t in (1e-30, 0.0)]
  assert np.isfinite(grads).all() and grads[0] == pytest.approx(grads[1])


def test_qabf_sources_generalises_qabf_to_k_sources():
  """K = 2 equals qabf; K = 3 is the strength-weighted sum over sources of
  the NumPy reference's per-source terms; K = 1 and size mismatches are
  named errors."""
  a = skimage.data.camera()[:64, :72].astype(np.float64)
  b = ndimage.gaussian_filter(a, 2)
  c = np.roll(a, 5, axis=1)
  f = (a + b + c) / 3
  x = [v[..., None] / 255 for v in (a, b, c, f)]
  np.testing.assert_allclose(M.qabf_sources(np.stack(x[:2]), x[3]),
                             M.qabf(x[0], x[1], x[3]), rtol=1e-5)
  # K = 3 from the two-source reference: sum_k Q_k g_k / sum_k g_k, where
  # the pair (k, k) contributes Q_k twice over twice the strength.
  def num_den(s):
    q = _qabf_numpy(s, s, f)
    gx, gy = (ndimage.sobel(s, axis=ax, mode='mirror') for ax in (1, 0))
    g = np.hypot(gx, gy).sum()
    return q * g, g
  parts = [num_den(s) for s in (a, b, c)]
  want = sum(p[0] for p in parts) / sum(p[1] for p in parts)
  np.testing.assert_allclose(M.qabf_sources(x[:3], x[3]), want, rtol=1e-4)
  with pytest.raises(ValueError, match='at least 2 sources'):
    M.qabf_sources(np.stack(x[:1]), x[3])
  with pytest.raises(ValueError, match='differ in size'):
    M.qabf_sources(np.stack(x[:2]), x[3][:60])


def test_mutual_information_and_entropy_match_numpy():
  a = skimage.data.camera()[:64, :64]
  b = np.roll(a, 3, axis=1)
  f = ((a.astype(int) + b) // 2).astype(np.uint8)

  def mi(x, y):
    joint, _, _ = np.histogram2d(x.ravel(), y.ravel(), bins=256,
                                 range=[[0, 256], [0, 256]])
    p = joint / joint.sum()
    px, py = p.sum(1), p.sum(0)
    nz = p > 0
    return float((p[nz] * np.log2(p[nz] / np.outer(px, py)[nz])).sum())
  out = M.mutual_information(a[..., None], b[..., None], f[..., None])
  np.testing.assert_allclose(out, mi(a, f) + mi(b, f), rtol=1e-4)
  np.testing.assert_allclose(M.entropy(a[..., None]),
                             skimage.measure.shannon_entropy(a), rtol=1e-5)
  h = lambda x: skimage.measure.shannon_entropy(x)
  nmi = 2 * (mi(a, f) / (h(a) + h(f)) + mi(b, f) / (h(b) + h(f)))
  np.testing.assert_allclose(
      M.mutual_information(a[..., None], b[..., None], f[..., None],
                           normalised=True), nmi, rtol=1e-4)


def test_spatial_frequency_and_gradients_hand_case():
  x = np.zeros((4, 4, 1), np.float32)
  x[:, 2:] = 1.0  # a vertical edge of 255 grey levels
  rf = 255.0**2 * 4 / 12  # one jump per row, 3 differences per row
  np.testing.assert_allclose(M.spatial_frequency(x), math.sqrt(rf), rtol=1e-6)
  np.testing.assert_allclose(M.standard_deviation(x), 127.5, rtol=1e-6)
  assert float(M.average_gradient(x)) > 0


def test_mef_ssim_known_cases():
  base = skimage.data.coffee()[:96, :128]
  stack = [np.clip(base.astype(np.float32) * s, 0, 255).astype(np.uint8)
           for s in (0.4, 1.0, 2.2)]
  mef = jax.jit(M.mef_ssim)  # eager, its hundreds of ops compile one by one
  # One source fused into itself is ideal.
  np.testing.assert_allclose(mef([stack[1]], stack[1]), 1.0, atol=1e-4)
  from gensynth.synth import fusion  # pylint: disable=g-import-not-at-top
  fused = np.clip(np.asarray(fusion.exposure_fusion(np.stack(stack))), 0, 1)
  s_fused = float(mef(stack, fused))
  s_dark = float(mef(stack, stack[0]))
  s_noise = float(mef(stack, np.random.default_rng(0).random(
      fused.shape).astype(np.float32)))
  assert s_fused > s_dark > s_noise
  assert 0.9 < s_fused <= 1.0 and s_noise < 0.3
  with pytest.raises(ValueError, match='44x44'):
    mef([np.zeros((30, 30, 3))] * 2, np.zeros((30, 30, 3)))


def test_mef_ssim_is_finite_where_every_source_is_flat():
  """Windows flat in every source (no contrast anywhere, as a clipped sky):
  their weights are 0 / 0 unless guarded, and jaxlib 0.12.1 turned the old
  guard (two divisions by clamped denominators, folded into one whose
  product flushed to 0) into NaN. The score matches the NumPy reference."""
  from launch.bench import learned_fusion  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  x = rng.random((3, 64, 64, 3)).astype(np.float32) * np.array(
      [0.3, 0.6, 1.0], np.float32)[:, None, None, None]
  x[:, 10:40, 10:40] = 0.5
  f = x.mean(0)
  got = float(jax.jit(M.mef_ssim)(x, f))
  assert np.isfinite(got)
  assert got == pytest.approx(learned_fusion.mef_ssim_reference(x, f),
                              abs=1e-5)


def test_mef_ssim_gradient_is_finite_where_the_fused_image_is_flat():
  """A clipped (flat) region of the fused image: 1 - MEF-SSIM stays a
  usable training loss (sqrt(0) has no gradient)."""
  rng = np.random.default_rng(0)
  x = rng.random((3, 48, 48, 3)).astype(np.float32)
  f = np.ones((48, 48, 3), np.float32)
  f[:24] = rng.random((24, 48, 3))
  g = jax.jit(jax.grad(lambda y: M.mef_ssim(x, y)))(f)
  assert np.all(np.isfinite(np.asarray(g))) and np.any(np.asarray(g) != 0)
