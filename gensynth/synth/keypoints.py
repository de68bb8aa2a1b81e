"""Oriented corner keypoints with binary descriptors, on device (ORB-like).

`detect_and_describe` finds Harris corners on a small scale pyramid, orients
each by its intensity centroid and describes it with 256 rotated intensity
comparisons (rBRIEF, Rublee et al. 2011), all as array ops under `jit`: no
Python loops over keypoints or pixels, one compiled program per image shape.
Shapes are static: a fixed number of keypoints comes back with a `valid`
mask, which is what the on-device matcher (`homography.match`) takes.

Differences from OpenCV's ORB: corners are Harris maxima (3x3 non-maximum
suppression, quadratic sub-pixel refinement) rather than FAST points ranked by
Harris; the comparison pattern is a fixed-seed isotropic Gaussian sample
(BRIEF's G II) instead of OpenCV's learned one; orientation uses a square
31x31 window masked to a disk, as ORB does.
"""

import math

import jax.numpy as jnp
from jax import lax
import numpy as np

from gensynth import errors
from gensynth.synth import checks
from gensynth.synth import compiled
from gensynth.synth import features
from gensynth.synth import xla_hints

PATCH_RADIUS = 15  # orientation disk and the pattern's extent (31x31 patch)
_BORDER = PATCH_RADIUS + 1
_NUM_BITS = 256
_PATTERN_SEED = 20111106  # fixed: descriptors must compare across runs


def comparison_pattern(num_bits=_NUM_BITS, radius=PATCH_RADIUS - 2,
                       seed=_PATTERN_SEED):
  """Pairs of patch offsets [num_bits, 2, 2] ((x, y) of both points).

  Drawn i.i.d. from N(0, (31/5)^2) per coordinate (BRIEF's G II) and
  rounded; pairs with a point outside the disk of `radius` (so that they stay
  inside the patch under any rotation) or with two equal points are redrawn.
  Fixed seed: the same pattern on every run and machine.
  """
  rng = np.random.default_rng(seed)
  out = np.zeros((0, 2, 2), np.float64)
  sigma = (2 * PATCH_RADIUS + 1) / 5.0
  while len(out) < num_bits:
    p = np.round(rng.normal(0.0, sigma, (2 * num_bits, 2, 2)))
    inside = np.all(np.hypot(p[..., 0], p[..., 1]) <= radius, axis=1)
    distinct = np.any(p[:, 0] != p[:, 1], axis=1)
    out = np.concatenate([out, p[inside & distinct]])
  return out[:num_bits].astype(np.float32)


def _gauss_kernel(sigma):
  r = max(1, int(math.ceil(3 * sigma)))
  k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma)**2)
  return tuple(float(v) for v in k / k.sum())


# The helpers below work on [..., H, W] arrays (no channel axis): XLA:CPU runs
# the same stencils over [..., H, W, 1] (a unit minor axis) much slower
# (`launch.benchmark --bench=panorama`).


def _taps(x, axis, weights):
  """Correlation with `weights` along axis (-2 or -1), reflect-101 borders."""
  r = len(weights) // 2
  pad = [(0, 0)] * x.ndim
  pad[axis] = (r, r)
  p = jnp.pad(x, pad, mode='reflect')
  n = x.shape[axis]
  out = 0.0
  for i, w in enumerate(weights):
    if w:
      out = out + w * lax.slice_in_dim(p, i, i + n, axis=axis % x.ndim)
  return out


def _blur(x, sigma):
  k = _gauss_kernel(sigma)
  return _taps(_taps(x, -2, k), -1, k)


def _valid_taps(x, axis, weights):
  """Correlation along axis (-2 or -1) without padding: n - len + 1 outputs."""
  n = x.shape[axis] - len(weights) + 1
  out = 0.0
  for i, w in enumerate(weights):
    if w:
      out = out + w * lax.slice_in_dim(x, i, i + n, axis=axis % x.ndim)
  return out


def _harris_valid(g, sigma, k):
  """Harris response without border handling: [..., H - 2m, W - 2m] where
  m = 1 + the Gaussian radius (no padding copies; the detector ignores a
  border wider than m anyway)."""
  gx = _valid_taps(_valid_taps(g, -1, (-1.0, 0.0, 1.0)), -2,
                   (0.125, 0.25, 0.125))
  gy = _valid_taps(_valid_taps(g, -2, (-1.0, 0.0, 1.0)), -1,
                   (0.125, 0.25, 0.125))
  kern = _gauss_kernel(sigma)

  def blur(z):
    return _valid_taps(_valid_taps(z, -2, kern), -1, kern)

  sxx, syy, sxy = blur(gx * gx), blur(gy * gy), blur(gx * gy)
  return sxx * syy - sxy * sxy - k * (sxx + syy)**2


def _harris(g, sigma, k):
  gx = _taps(_taps(g, -1, (-1.0, 0.0, 1.0)), -2, (0.125, 0.25, 0.125))
  gy = _taps(_taps(g, -2, (-1.0, 0.0, 1.0)), -1, (0.125, 0.25, 0.125))
  sxx, syy, sxy = _blur(gx * gx, sigma), _blur(gy * gy, sigma), _blur(
      gx * gy, sigma)
  return sxx * syy - sxy * sxy - k * (sxx + syy)**2


def harris_response(grey, *, sigma=1.0, k=0.04):
  """Harris corner measure det(M) - k tr(M)^2 of a grey [..., H, W, 1] image.

  M is the structure tensor of Sobel gradients (scaled by 1/8 to per-pixel
  differences) smoothed by a Gaussian of `sigma`; reflect-101 borders.
  """
  grey = checks.image(grey, 'grey', min_hw=3, channels=(1,))
  return _harris(grey[..., 0], sigma, k)[..., None]


def _resize_weights(n_in, n_out):
  """Taps [n_out, T] and weights of a triangle (linear) filter widened by the
  scale when shrinking: jax.image.resize's 'linear' with antialias."""
  s = n_in / n_out
  width = max(s, 1.0)
  centre = (np.arange(n_out) + 0.5) * s - 0.5
  first = np.floor(centre - width).astype(np.int64) + 1
  idx = first[:, None] + np.arange(int(np.ceil(2 * width)) + 1)[None]
  w = np.maximum(0.0, 1.0 - np.abs(idx - centre[:, None]) / width)
  w = np.where((idx >= 0) & (idx < n_in), w, 0.0)
  w /= w.sum(1, keepdims=True)
  return np.clip(idx, 0, n_in - 1).astype(np.int32), w.astype(np.float32)


def _resize_rows(x, n_out):
  """Resizes axis -2 of [..., H, W]: each tap gathers whole rows."""
  idx, w = _resize_weights(x.shape[-2], n_out)
  out = 0.0
  for t in range(idx.shape[1]):
    out = out + jnp.take(x, jnp.asarray(idx[:, t]), axis=-2) * jnp.asarray(
        w[:, t])[:, None]
  return xla_hints.materialise(out)


def _resize(x, hw):
  """Antialiased bilinear resize of [..., H, W] to hw.

  Equal to jax.image.resize(..., 'linear', antialias=True) within float
  rounding. Each axis is a few row gathers with weights (tap tables built at
  trace time from the static shapes); columns are resized as rows of the
  transpose, since gathering single elements along the minor axis is slow on
  XLA:CPU, as is jax.image.resize's dense-matrix form
  (`launch.benchmark --bench=panorama`).
  """
  if x.shape[-2] != hw[0]:
    x = _resize_rows(x, hw[0])
  if x.shape[-1] != hw[1]:
    xt = xla_hints.materialise(jnp.swapaxes(x, -1, -2))
    x = xla_hints.materialise(jnp.swapaxes(_resize_rows(xt, hw[1]), -1, -2))
  return x


def _local_max(r):
  """r is >= its 8 neighbours (3x3 non-maximum suppression), [H, W]."""
  p = jnp.pad(r, 1, constant_values=-jnp.inf)
  h, w = r.shape
  rows = jnp.maximum(jnp.maximum(p[:-2], p[1:-1]), p[2:])  # [H, W + 2]
  m = jnp.maximum(jnp.maximum(rows[:, :-2], rows[:, 1:-1]), rows[:, 2:])
  return r >= m[:h, :w]


def _level_budgets(total, num_scales, scale_factor):
  """Keypoints per level, a geometric series in 1/scale_factor (OpenCV's)."""
  f = 1.0 / scale_factor
  first = total * (1 - f) / (1 - f**num_scales) if f < 1 else total
  n = [int(round(first * f**i)) for i in range(num_scales)]
  n[0] += total - sum(n)
  return n


def _gather(img, y, x):
  """img [H, W] at integer (y, x) arrays (clipped into the image)."""
  h, w = img.shape
  return img.reshape(-1)[jnp.clip(y, 0, h - 1) * w + jnp.clip(x, 0, w - 1)]


def _refine(r, y, x):
  """Quadratic sub-pixel offsets of maxima at (y, x) of response r [H, W]."""

  def offset(a, b, c):  # vertex of the parabola through (-1, a), (0, b), (1, c)
    den = a - 2 * b + c
    return jnp.where(den < 0, jnp.clip(0.5 * (a - c) / jnp.where(
        den < 0, den, -1.0), -0.5, 0.5), 0.0)

  c = _gather(r, y, x)
  dx = offset(_gather(r, y, x - 1), c, _gather(r, y, x + 1))
  dy = offset(_gather(r, y - 1, x), c, _gather(r, y + 1, x))
  return dy, dx


def _harris_levels(imgs):
  """Harris responses [H_l, W_l] of several levels in one stencil pass: the
  levels side by side in one canvas (zero rows below the shorter ones).
  Each response is exact wherever its window lies inside its own level,
  i.e. at least m = 1 + the Gaussian radius from the level's edges; the
  detector ignores a border of _BORDER > m pixels."""
  m = 1 + len(_gauss_kernel(1.0)) // 2
  top = max(img.shape[0] for img in imgs)
  canvas = jnp.concatenate([jnp.pad(img, ((0, top - img.shape[0]), (0, 0)))
                            for img in imgs], axis=1)
  r = jnp.pad(xla_hints.materialise(_harris_valid(canvas, 1.0, 0.04)), m)
  out, col = [], 0
  for img in imgs:
    out.append(r[:img.shape[0], col:col + img.shape[1]])
    col += img.shape[1]
  return out


def _level(img, r, budget, threshold):
  """Keypoints of one pyramid level [H, W] with Harris response r: (x, y,
  score, integer y and x, the level's descriptor image). Orientation and
  descriptors are computed for every level at once
  (`_orient_and_describe`)."""
  h, w = img.shape
  yy = jnp.arange(h)[:, None]
  xx = jnp.arange(w)[None, :]
  inner = ((yy >= _BORDER) & (yy < h - _BORDER) & (xx >= _BORDER) &
           (xx < w - _BORDER))
  cand = inner & _local_max(r) & (r > threshold)
  score = jnp.where(cand, r, -jnp.inf).reshape(-1)
  top, flat = lax.top_k(score, budget)
  y, x = flat // w, flat % w
  dy, dx = _refine(r, y, x)
  r2 = len(_gauss_kernel(2.0)) // 2
  smooth = jnp.pad(_valid_taps(_valid_taps(img, -2, _gauss_kernel(2.0)), -1,
                               _gauss_kernel(2.0)), r2, mode='edge')
  return (x.astype(jnp.float32) + dx, y.astype(jnp.float32) + dy, top, y, x,
          smooth)


class _Levels:
  """Several [H_l, W_l] images as one flat buffer, and per-keypoint
  (offset, height, width) into it: one gather serves keypoints of every
  pyramid level (one orientation and one descriptor computation in the
  graph instead of one per level)."""

  def __init__(self, images, counts):
    self.flat = jnp.concatenate([m.reshape(-1) for m in images])
    sizes = [m.shape for m in images]
    starts = np.cumsum([0] + [a * b for a, b in sizes[:-1]])
    rep = lambda v: jnp.asarray(np.repeat(np.asarray(v, np.int32), counts))
    self.off = rep(starts)[:, None]
    self.h = rep([a for a, _ in sizes])[:, None]
    self.w = rep([b for _, b in sizes])[:, None]

  def gather(self, y, x):
    """Values at integer (y, x) [K, N] (clipped into each keypoint's level)."""
    return self.flat[self.off + jnp.clip(y, 0, self.h - 1) * self.w +
                     jnp.clip(x, 0, self.w - 1)]


def _orient_and_describe(imgs, smooths, y, x, counts, pattern):
  """Orientation (intensity centroid) and rBRIEF bits [K, num_bits] of
  keypoints (y, x) [K] of several levels (`counts` keypoints each)."""
  d = np.arange(-PATCH_RADIUS, PATCH_RADIUS + 1)
  dy, dx = np.meshgrid(d, d, indexing='ij')
  disk = (dx**2 + dy**2) <= PATCH_RADIUS**2
  oy, ox = dy[disk], dx[disk]  # [P] offsets inside the disk
  levels = _Levels(imgs, counts)
  vals = levels.gather(y[:, None] + oy[None], x[:, None] + ox[None])  # [K, P]
  angle = jnp.arctan2(vals @ jnp.asarray(oy, vals.dtype),
                      vals @ jnp.asarray(ox, vals.dtype))
  c, s = jnp.cos(angle)[:, None], jnp.sin(angle)[:, None]  # [K, 1]
  smooth = _Levels(smooths, counts)

  def sample(px, py):  # pattern offsets [B] -> values [K, B]
    rx = jnp.round(c * px[None] - s * py[None]).astype(jnp.int32)
    ry = jnp.round(s * px[None] + c * py[None]).astype(jnp.int32)
    return smooth.gather(y[:, None] + ry, x[:, None] + rx)

  p = jnp.asarray(pattern)
  return sample(p[:, 0, 0], p[:, 0, 1]) < sample(p[:, 1, 0], p[:, 1, 1])


@compiled.op
def detect_and_describe(image, *, num_keypoints=2000, num_scales=4,
                        scale_factor=1.3, registration_pixels=0.6e6,
                        threshold=1e-6):
  """Oriented Harris keypoints and 256-bit rBRIEF descriptors of one image.

  Args:
    image: [H, W, C] image (grey, RGB or RGBA; float in [0, 1] or uint8/16).
    num_keypoints: how many keypoints come back (padded; see `valid`).
    num_scales, scale_factor: the scale pyramid (level i is scale_factor^-i
      of the registration resolution); keypoints are shared out over levels
      as in OpenCV's ORB.
    registration_pixels: the image is first resized to about this many
      pixels (never enlarged), as panorama stitchers register at ~0.6 Mpx.
    threshold: minimum Harris response (gradients in per-pixel intensity
      differences); weaker corners are not returned.

  Returns:
    (xy [K, 2] float32 (x, y) in full-resolution pixel coordinates,
     descriptors [K, 256] bool, valid [K] bool, scores [K] float32), with
    K = num_keypoints, strongest first within each pyramid level. Slots
    that are not `valid` (fewer corners than K) hold xy 0, all-False bits
    and score 0.
  """
  image = checks.image(image, 'image', min_hw=2 * _BORDER + 1)
  if image.ndim != 3:
    raise errors.InputError(
        f'image: detect_and_describe takes one [H, W, C] image '
        f'(vmap it for batches), got shape {tuple(image.shape)}.')
  if num_keypoints < 1 or num_scales < 1 or not scale_factor > 1:
    raise errors.InputError(f'num_keypoints={num_keypoints} and num_scales='
                            f'{num_scales} must be >= 1 and scale_factor='
                            f'{scale_factor} > 1.')
  h, w = image.shape[:2]
  scale = min(1.0, math.sqrt(registration_pixels / (h * w)))
  sizes = []
  for i in range(num_scales):
    f = scale / scale_factor**i
    lh, lw = int(round(h * f)), int(round(w * f))
    if min(lh, lw) < 2 * _BORDER + 3:
      break
    sizes.append((lh, lw))
  if not sizes:
    raise errors.InputError(
        f'image of {h}x{w} pixels is too small for keypoints at '
        f'registration_pixels={registration_pixels:g}; the '
        f'smallest level needs {2 * _BORDER + 3} pixels a side.')
  budgets = _level_budgets(num_keypoints, len(sizes), scale_factor)
  if image.shape[-1] == 1:
    grey = image[..., 0]
  elif image.shape[-1] in (3, 4):
        grey = sum(wt * image[..., i] for i, wt in enumerate(features.LUMA))
  else:
    raise errors.InputError(
        f'image: {image.shape[-1]} channels, expected 1 (grey), '
        '3 (RGB) or 4 (RGBA).')
  # Materialised once: fused into every resize tap it would be recomputed
  # from the colour image for each tap of each level.
  grey = xla_hints.materialise(grey.astype(jnp.float32))
  pattern = comparison_pattern()
  xs, ys, scores, iy, ix, imgs, smooths, counts = ([] for _ in range(8))
  kept = [(hw, b) for hw, b in zip(sizes, budgets) if b >= 1]
  levels = [_resize(grey, hw) for hw, _ in kept]
  for ((lh, lw), budget), level, r in zip(kept, levels,
                                          _harris_levels(levels)):
    x, y, s, yi, xi, smooth = _level(level, r, min(budget, lh * lw),
                                     threshold)
    # Pixel centres: level (x + 0.5) * (W / lw) - 0.5 in the full image.
    xs.append((x + 0.5) * (w / lw) - 0.5)
    ys.append((y + 0.5) * (h / lh) - 0.5)
    scores.append(s)
    iy.append(yi)
    ix.append(xi)
    imgs.append(level)
    smooths.append(smooth)
    counts.append(s.shape[0])
  bits = [_orient_and_describe(imgs, smooths, jnp.concatenate(iy),
                               jnp.concatenate(ix), counts, pattern)]
  xy = jnp.stack([jnp.concatenate(xs), jnp.concatenate(ys)], -1)
  scores = jnp.concatenate(scores)
  valid = jnp.isfinite(scores)
  scores = jnp.where(valid, scores, 0.0)  # finite everywhere; see `valid`
  n = xy.shape[0]
  if n < num_keypoints:  # tiny images: fewer pixels than keypoints asked for
    pad = num_keypoints - n
    xy = jnp.pad(xy, ((0, pad), (0, 0)))
    scores = jnp.pad(scores, (0, pad))
    valid = jnp.pad(valid, (0, pad))
    bits.append(jnp.zeros((pad, _NUM_BITS), bool))
  desc = jnp.concatenate(bits) & valid[:, None]
  return (jnp.where(valid[:, None], xy, 0.0).astype(jnp.float32), desc, valid,
          scores.astype(jnp.float32))
