"""Image and fusion quality metrics on [..., H, W, C] images.

Reference-based: PSNR, SSIM. Fusion (sources A, B and fused F, computed on
grey values in [0, 255]): Xydeas-Petrovic Q^AB/F, mutual information (MI) and
normalised MI, entropy, spatial frequency, standard deviation, average
gradient. Constants are stated where toolboxes disagree.
"""

import math

import jax
import jax.numpy as jnp
from jax import lax

from gensynth import errors
from gensynth.synth import checks
from gensynth.synth import compiled
from gensynth.synth import features


@compiled.op
def psnr(a, b, *, max_val=1.0):
  """Peak signal-to-noise ratio in dB over H, W, C: [..., H, W, C] -> [...]."""
  a, b = checks.image(a, 'a'), checks.image(b, 'b')
  checks.same_shape([a, b], ['a', 'b'])
  mse = jnp.mean((a - b)**2, axis=(-3, -2, -1))
  return 10.0 * jnp.log10(max_val**2 / jnp.maximum(mse, 1e-20))


def _gaussian_valid(x, sigma=1.5, radius=5):
  """Separable Gaussian filter keeping only fully-covered ('valid') pixels."""
  t = jnp.arange(-radius, radius + 1, dtype=jnp.float32)
  g = jnp.exp(-t**2 / (2 * sigma**2))
  g = g / jnp.sum(g)
  h, w = x.shape[-3:-1]
  out_h = sum(g[i] * lax.slice_in_dim(x, i, i + h - 2 * radius, axis=x.ndim - 3)
              for i in range(2 * radius + 1))
  return sum(g[i] * lax.slice_in_dim(out_h, i, i + w - 2 * radius,
                                     axis=x.ndim - 2)
             for i in range(2 * radius + 1))


@compiled.op
def ssim(a, b, *, max_val=1.0, k1=0.01, k2=0.03):
  """Mean SSIM (Wang et al. 2004), Gaussian 11x11 window with sigma 1.5.

  Equals skimage.metrics.structural_similarity(gaussian_weights=True,
  sigma=1.5, use_sample_covariance=False, data_range=max_val, channel_axis=-1):
  the mean over pixels whose window lies inside the image, and over channels.
  """
  a, b = checks.image(a, 'a', min_hw=11), checks.image(b, 'b', min_hw=11)
  checks.same_shape([a, b], ['a', 'b'])
  c1, c2 = (k1 * max_val)**2, (k2 * max_val)**2
  mu_a, mu_b = _gaussian_valid(a), _gaussian_valid(b)
  var_a = _gaussian_valid(a * a) - mu_a**2
  var_b = _gaussian_valid(b * b) - mu_b**2
  cov = _gaussian_valid(a * b) - mu_a * mu_b
  s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2) /
       ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)))
  return jnp.mean(s, axis=(-3, -2, -1))


def _grey255(x, name, min_hw=1):
  x = checks.image(x, name, min_hw=min_hw)
  return features.grey(x)[..., 0] * 255.0 if x.shape[-1] != 1 else \
      x[..., 0] * 255.0


# Xydeas & Petrovic (2000) constants, as in the widely used MATLAB toolboxes.
QABF_CONSTANTS = dict(gamma_g=0.9994, kappa_g=-15.0, sigma_g=0.5,
                      gamma_a=0.9879, kappa_a=-22.0, sigma_a=0.8)


def _edge(x):
  gx, gy = features.sobel(x[..., None])
  gx, gy = gx[..., 0], gy[..., 0]
  # sqrt has no gradient at 0 (flat regions, reflected borders): the inner
  # where keeps Q^AB/F differentiable, e.g. as a training loss.
  sq = gx**2 + gy**2
  strength = jnp.where(sq > 0, jnp.sqrt(jnp.where(sq > 0, sq, 1.0)), 0.0)
  # Orientation arctan(gy / gx) in (-pi/2, pi/2]; 0 where there is no
  # gradient. Taken from arctan2 and folded: arctan of the ratio has a NaN
  # gradient where gx is tiny (gy / gx^2 overflows while 1 / (1 + r^2) is
  # 0), which a training loss on Q^AB/F meets.
  some = sq > 0
  full = jnp.arctan2(jnp.where(some, gy, 0.0), jnp.where(some, gx, 1.0))
  folded = jnp.where(full > math.pi / 2, full - math.pi,
                     jnp.where(full <= -math.pi / 2, full + math.pi, full))
  angle = jnp.where(some, folded, 0.0)
  return strength, angle


def _edge_preservation(g_src, a_src, g_f, a_f, c):
  ratio = jnp.where(g_src > g_f, g_f / jnp.maximum(g_src, 1e-12),
                    jnp.where(g_src == g_f, 1.0,
                              g_src / jnp.maximum(g_f, 1e-12)))
  align = 1.0 - jnp.abs(a_src - a_f) / (math.pi / 2)
  q_g = c['gamma_g'] / (1 + jnp.exp(c['kappa_g'] * (ratio - c['sigma_g'])))
  q_a = c['gamma_a'] / (1 + jnp.exp(c['kappa_a'] * (align - c['sigma_a'])))
  return q_g * q_a


@compiled.op
def qabf(a, b, fused):
  """Xydeas-Petrovic edge-preservation metric Q^AB/F in [0, 1]: [...].

  Sobel strength g and orientation alpha per image; G = min(gA/gF, gF/gA),
  A = 1 - |alphaA - alphaF| / (pi/2); Q = Q_g(G) Q_a(A) with the sigmoid
  constants in QABF_CONSTANTS; weighted by the source strengths.
  """
  a, b, f = (_grey255(x, n) for x, n in ((a, 'a'), (b, 'b'), (fused, 'fused')))
  checks.same_shape([a, b, f], ['a', 'b', 'fused'])
  return _qabf_grey(jnp.stack([a, b]), f)


def _qabf_grey(sources, fused):
  """Q^AB/F of grey [K, ..., H, W] sources and a grey [..., H, W] fused
  image: sum_k sum_px Q_kF g_k / sum_k sum_px g_k."""
  g_src, a_src = _edge(sources)
  g_f, a_f = _edge(fused)
  q = _edge_preservation(g_src, a_src, g_f[None], a_f[None], QABF_CONSTANTS)
  num = jnp.sum(q * g_src, axis=(0, -2, -1))
  return num / jnp.maximum(jnp.sum(g_src, axis=(0, -2, -1)), 1e-12)


@compiled.op
def qabf_sources(sources, fused):
  """Q^AB/F for K >= 2 sources (list or [K, ..., H, W, C]): each source's
  edge preservation in the fused image [..., H, W, C], weighted by that
  source's edge strength, sum_k sum_px Q_kF g_k / sum_k sum_px g_k.
  Equals `qabf(a, b, fused)` for K = 2. Differentiable: the multi-focus
  training loss (gensynth.steps.fusion)."""
  srcs = checks.stack(sources, 'sources')
  if srcs.shape[0] < 2:
    raise errors.InputError(f'sources: Q^AB/F needs at least 2 sources, got '
                            f'{srcs.shape[0]}.')
  f = _grey255(fused, 'fused')
  if srcs.shape[1:-1] != f.shape:
    raise errors.InputError(f'sources {tuple(srcs.shape[1:])} and fused '
                            f'{tuple(jnp.shape(fused))} differ in size.')
  return _qabf_grey(_grey255(srcs, 'sources'), f)


def _histogram2d(x, y, bins=256):
  """Joint histogram of two integer-valued [..., H, W] images."""
  xi = jnp.clip(jnp.round(x), 0, bins - 1).astype(jnp.int32)
  yi = jnp.clip(jnp.round(y), 0, bins - 1).astype(jnp.int32)
  flat = (xi * bins + yi).reshape(x.shape[:-2] + (-1,))
  one = lambda f: jnp.zeros(bins * bins, jnp.float32).at[f].add(1.0)
  for _ in range(flat.ndim - 1):
    one = jax.vmap(one)
  return one(flat).reshape(flat.shape[:-1] + (bins, bins))


def _entropy_from_counts(p):
  p = p / jnp.sum(p, axis=-1, keepdims=True)
  return -jnp.sum(jnp.where(p > 0, p * jnp.log2(jnp.where(p > 0, p, 1)), 0),
                  axis=-1)


@compiled.op
def entropy(x):
  """Shannon entropy (bits) of the 256-bin grey histogram: [...]."""
  g = _grey255(x, 'x')
  counts = _histogram2d(g, jnp.zeros_like(g)).sum(-1)
  return _entropy_from_counts(counts)


def _mi(x, y):
  joint = _histogram2d(x, y)
  hx = _entropy_from_counts(joint.sum(-1))
  hy = _entropy_from_counts(joint.sum(-2))
  hxy = _entropy_from_counts(joint.reshape(joint.shape[:-2] + (-1,)))
  return hx + hy - hxy, hx, hy


@compiled.op
def mutual_information(a, b, fused, *, normalised=False):
  """MI(A,F) + MI(B,F) in bits from 256-bin joint histograms: [...].

  With normalised=True: NMI (Hossny et al. 2008) =
  2 [MI(A,F) / (H(A) + H(F)) + MI(B,F) / (H(B) + H(F))].
  """
  a, b, f = (_grey255(x, n) for x, n in ((a, 'a'), (b, 'b'), (fused, 'fused')))
  checks.same_shape([a, b, f], ['a', 'b', 'fused'])
  mi_af, ha, hf = _mi(a, f)
  mi_bf, hb, _ = _mi(b, f)
  if normalised:
    return 2 * (mi_af / (ha + hf) + mi_bf / (hb + hf))
  return mi_af + mi_bf


@compiled.op
def spatial_frequency(x):
  """SF = sqrt(RF^2 + CF^2) of grey values in [0, 255]: [...]."""
  g = _grey255(x, 'x', min_hw=2)
  rf = jnp.mean(jnp.diff(g, axis=-1)**2, axis=(-2, -1))
  cf = jnp.mean(jnp.diff(g, axis=-2)**2, axis=(-2, -1))
  return jnp.sqrt(rf + cf)


@compiled.op
def average_gradient(x):
  """Mean of sqrt((dx^2 + dy^2) / 2) of grey values in [0, 255]: [...]."""
  g = _grey255(x, 'x', min_hw=2)
  dx = jnp.diff(g, axis=-1)[..., :-1, :]
  dy = jnp.diff(g, axis=-2)[..., :, :-1]
  return jnp.mean(jnp.sqrt((dx**2 + dy**2) / 2), axis=(-2, -1))


@compiled.op
def standard_deviation(x):
  """Standard deviation of grey values in [0, 255]: [...]."""
  return jnp.std(_grey255(x, 'x'), axis=(-2, -1))


_MEF_SCALE_WEIGHTS = (0.0448, 0.2856, 0.3001)


def _gauss_filter_valid(x):
  """Gaussian 11x11 (sigma 1.5) 'valid' filtering of [..., H, W] maps."""
  return _gaussian_valid(x[..., None])[..., 0]


def _mef_ssim_scale(srcs, fused, c):
  """Quality map mean at one scale: srcs [K, ..., H, W], fused [..., H, W].

  The K x K windowed covariances among the sources enter only through their
  sum (the variance of the summed sources) and the quadratic form a' C a;
  both are built without unrolling K^2 filters into the graph (the form by a
  scan over rows of C), so compilation does not grow with K.
  """
  k = srcs.shape[0]
  # Every windowed mean but the quadratic form's in one filter call (one
  # set of slices in the graph instead of six): [sources, sources^2,
  # sources * fused, fused, fused^2, (sum of sources)^2].
  tot = jnp.sum(srcs, 0)
  moments = _gauss_filter_valid(jnp.concatenate([
      srcs, srcs * srcs, srcs * fused, jnp.stack([fused, fused * fused,
                                                  tot * tot])]))
  mu, sq, cross = moments[:k], moments[k:2 * k], moments[2 * k:3 * k]
  mu_f, sq_f, tot_sq = moments[3 * k], moments[3 * k + 1], moments[3 * k + 2]
  var = jnp.maximum(sq - mu**2, 0.0)  # [K, ...]
  cov_f = cross - mu * mu_f
  var_f = jnp.maximum(sq_f - mu_f**2, 0.0)
  contrast = jnp.sqrt(var)
  c_hat = jnp.max(contrast, axis=0)
  # Structure consistency R = |sum_k x~_k| / sum_k |x~_k|, with the first
  # norm the windowed std of the summed sources, and the exponent
  # p = tan(pi R / 2), clipped.
  total_sq = tot_sq - jnp.sum(mu, 0)**2
  total = jnp.sqrt(jnp.maximum(total_sq, 0.0))
  r = total / jnp.maximum(jnp.sum(contrast, axis=0), 1e-12)
  # R -> 1 would put tan past pi/2 in float32 (a large negative value).
  p = jnp.minimum(jnp.tan(jnp.pi * jnp.clip(r, 0, 1 - 1e-4) / 2), 10.0)
  # Weights c_k^p / sum_j c_j^p taken as (c_k / c^)^p, whose sum is >= 1
  # wherever some contrast is above 1e-12 (and 0 elsewhere), so the two
  # divisions below never meet a denominator that underflows: XLA may fold
  # them into one by the product of the denominators, and c^p's sum
  # clamped at 1e-30 times 1e-12 flushed to 0 gave 0 / 0 (jaxlib 0.12.1).
  safe_c = jnp.maximum(contrast, 1e-12)
  w = jnp.where(contrast > 1e-12,
                (safe_c / jnp.maximum(c_hat, 1e-12))**p, 0.0)
  a = w / jnp.maximum(jnp.sum(w, axis=0), 1.0) / safe_c  # s- = sum a_k x~_k
  rows = jnp.arange(k)

  def quad(acc, i):  # acc + a_i * sum_j C_ij a_j, one row of C at a time
    xi = lax.dynamic_index_in_dim(srcs, i, keepdims=False)
    row = _gauss_filter_valid(xi * srcs) - (
        lax.dynamic_index_in_dim(mu, i, keepdims=False) * mu)
    row = jnp.where((rows == i).reshape((k,) + (1,) * (row.ndim - 1)),
                    jnp.maximum(row, 0.0), row)  # variances >= 0
    ai = lax.dynamic_index_in_dim(a, i, keepdims=False)
    return acc + ai * jnp.sum(a * row, axis=0), None

  var_s, _ = lax.scan(quad, jnp.zeros_like(c_hat), rows)
  cov_sf = jnp.sum(a * cov_f, axis=0)
  std_s = jnp.sqrt(jnp.maximum(var_s, 1e-24))
  # cov(x^, y) with x^ = c^ s-/|s-|; |corr| <= 1 bounds the float32
  # cancellation of E[xy] - E[x]E[y] in nearly flat windows.
  # sqrt has no gradient at 0 (a flat window of the fused image, e.g. where
  # it is clipped): the inner where keeps MEF-SSIM usable as a loss.
  std_f = jnp.where(var_f > 0, jnp.sqrt(jnp.where(var_f > 0, var_f, 1.0)),
                    0.0)
  corr = jnp.clip(cov_sf / std_s, -std_f, std_f)
  cov_hat = c_hat * corr
  q = (2 * cov_hat + c) / (c_hat**2 + var_f + c)
  return jnp.mean(q, axis=(-2, -1))


@compiled.op
def mef_ssim(sources, fused):
  """MEF-SSIM (Ma, Zeng & Wang, IEEE TIP 2015), implemented from the paper.

  Per 11x11 Gaussian window (sigma 1.5) and grey source k in [0, 255]:
  contrast c_k (windowed std), desired contrast c^ = max_k c_k, structure
  s- = sum c_k^p s_k / sum c_k^p with p = tan(pi R / 2) (clipped at 10),
  R = |sum x~_k| / sum |x~_k|; q = (2 cov(x^, y) + C) / (var(x^) + var(y) + C),
  C = (0.03 * 255)^2; three scales (2x2 mean, decimate) combined as
  prod q_l^w_l with w = [0.0448, 0.2856, 0.3001] normalised.

  Args:
    sources: K exposures (list or [K, ..., H, W, C] array), H, W >= 44.
    fused: the fused image [..., H, W, C].

  Returns:
    score in [-1, 1] (1 = ideal), shape [...].
  """
  srcs = checks.stack(sources, 'sources')
  f = checks.image(fused, 'fused', min_hw=44)
  if srcs.shape[1:-1] != f.shape[:-1]:
    raise errors.InputError(f'sources {tuple(srcs.shape[1:])} and fused '
                            f'{tuple(f.shape)} differ in size.')
  if min(f.shape[-3:-1]) < 44:
    raise errors.InputError(
        'fused: MEF-SSIM needs at least 44x44 pixels (three '
        'scales of an 11x11 window).')
  g_src = jnp.stack([_grey255(s, 'sources') for s in srcs])
  g_f = _grey255(f, 'fused')
  c = (0.03 * 255)**2
  weights = jnp.asarray(_MEF_SCALE_WEIGHTS) / sum(_MEF_SCALE_WEIGHTS)
  score = 1.0
  for level, wl in enumerate(weights):
    if level:
      h, w = g_f.shape[-2] // 2 * 2, g_f.shape[-1] // 2 * 2
      pool = lambda z: 0.25 * (z[..., 0:h:2, 0:w:2] + z[..., 1:h:2, 0:w:2] +
                               z[..., 0:h:2, 1:w:2] + z[..., 1:h:2, 1:w:2])
      g_src, g_f = pool(g_src), pool(g_f)
    q = _mef_ssim_scale(g_src, g_f, c)
    score = score * jnp.sign(q) * jnp.abs(q)**wl
  return score
