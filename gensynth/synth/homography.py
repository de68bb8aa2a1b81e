"""Descriptor matching and RANSAC homographies, on device.

Matching builds the full distance matrix with one matmul and applies Lowe's
ratio test and a mutual-nearest check; RANSAC draws all minimal 4-point
samples at once, solves every DLT system in one batched solve and scores all
hypotheses against all matches in parallel (the layout that suits an
accelerator), then refits the winner on its inliers. Shapes stay static: a
`valid` mask marks usable rows instead of filtering arrays.
"""

import jax
import jax.numpy as jnp
from jax import lax

from gensynth import errors
from gensynth.synth import checks


def _bits(d):
  d = jnp.asarray(d)
  return d.astype(jnp.float32) if d.dtype == jnp.bool_ else d


def _packed_bits(d):
  """Bool [N, D] -> uint32 [N, ceil(D / 32)], bit j of word w = d[:, 32w + j]
  (D padded with False, which adds no Hamming distance)."""
  pad = -d.shape[1] % 32
  d = jnp.pad(d, ((0, 0), (0, pad))).reshape(d.shape[0], -1, 32)
  return jnp.sum(d.astype(jnp.uint32) << jnp.arange(32, dtype=jnp.uint32),
                 axis=-1, dtype=jnp.uint32)


def distance_matrix(desc_a, desc_b, *, binary):
  """[Na, D] x [Nb, D] -> [Na, Nb]: Hamming (binary) or Euclidean distances.

  Binary descriptors given as bool arrays are compared as packed 32-bit
  words (popcount of the XOR: the same integers as the 0/1 product form,
  faster on XLA:CPU; `launch.benchmark --bench=panorama`, BUILD_NOTES.md
  "Faster pair registration")."""
  da, db = (jnp.asarray(d) for d in (desc_a, desc_b))
  if (binary and da.dtype == jnp.bool_ and db.dtype == jnp.bool_ and
      da.ndim == db.ndim == 2 and da.shape[1] == db.shape[1] and
      da.shape[1]):
    pa, pb = _packed_bits(da), _packed_bits(db)
    return jnp.sum(lax.population_count(pa[:, None, :] ^ pb[None, :, :]),
                   axis=-1).astype(jnp.float32)
  a, b = (checks.values(_bits(d), name, shape=(None, None),
                        expected='descriptors [N, D]').astype(jnp.float32)
          for d, name in ((desc_a, 'desc_a'), (desc_b, 'desc_b')))
  if a.shape[1] != b.shape[1] or not a.shape[1]:
    raise errors.InputError(f'descriptors must be [N, D] with one D >= 1, got '
                            f'{a.shape} and {b.shape}.')
  cross = a @ b.T
  sq = (jnp.sum(a * a, 1)[:, None] + jnp.sum(b * b, 1)[None, :] - 2 * cross)
  sq = jnp.maximum(sq, 0.0)
  return sq if binary else jnp.sqrt(sq)  # for 0/1 vectors sq = Hamming


def match(desc_a, desc_b, *, binary, ratio=0.8, mutual=True, valid_a=None,
          valid_b=None):
  """Nearest neighbours of each row of desc_a in desc_b.

  `valid_a` / `valid_b` mark real rows when descriptor arrays are padded to a
  fixed size (padding keeps one compiled matcher for every image pair).

  Returns:
    (index into b [Na] int32, valid [Na] bool): valid rows pass the ratio test
    (best < ratio * second best) and, with mutual, are each other's nearest.
  """
  if not ratio > 0:
    raise errors.InputError(
        f'ratio={ratio} must be positive (Lowe uses 0.7-0.8).')
  d = distance_matrix(desc_a, desc_b, binary=binary)
  if d.shape[1] < 2:
    raise errors.InputError(
        f'desc_b has {d.shape[1]} rows; the ratio test needs at '
        'least 2 candidates.')
  if valid_b is not None:
    d = jnp.where(valid_b[None, :], d, jnp.inf)
  if valid_a is not None:
    d = jnp.where(valid_a[:, None], d, jnp.inf)
  # Best and second best by two row minima, not lax.top_k(d, 2): XLA:CPU
  # rewrites a top_k whose outputs are sliced into a full sort of every row
  # (0.6 s instead of 0.04 s for 2000 x 2000 here). Ties give second == best,
  # as top_k would, so tied candidates fail the ratio test.
  # Arg-minima as a min and then the first index attaining it: two plain
  # reductions, several times faster on XLA:CPU than jnp.argmin's
  # value-and-index reduction.
  rows, cols = jnp.arange(d.shape[0]), jnp.arange(d.shape[1])
  best = jnp.min(d, axis=1)
  nearest = jnp.min(jnp.where(d == best[:, None], cols[None, :], d.shape[1]),
                    axis=1)
  nearest = jnp.minimum(nearest, d.shape[1] - 1)  # rows that are all inf
  second = jnp.min(jnp.where(cols[None, :] == nearest[:, None], jnp.inf, d),
                   axis=1)
  valid = jnp.isfinite(best) & (best < ratio * second)
  if mutual:
    col_best = jnp.min(d, axis=0)
    back = jnp.min(jnp.where(d == col_best[None, :], rows[:, None],
                             d.shape[0]), axis=0)
    valid &= back[nearest] == rows
  return nearest.astype(jnp.int32), valid


def _normaliser(pts, weights):
  """Hartley normalisation: centroid to 0, mean distance sqrt(2)."""
  w = weights / jnp.maximum(jnp.sum(weights), 1e-9)
  c = jnp.sum(pts * w[:, None], 0)
  dist = jnp.sum(jnp.linalg.norm(pts - c, axis=1) * w)
  s = jnp.sqrt(2.0) / jnp.maximum(dist, 1e-9)
  return jnp.array([[s, 0, -s * c[0]], [0, s, -s * c[1]], [0, 0, 1.0]])


def _apply(h, pts):
  p = pts @ h[:2, :2].T + h[:2, 2]
  z = pts @ h[2, :2] + h[2, 2]
  return p / z[:, None]


def apply_homography(h, pts):
  """Maps [N, 2] (x, y) points through a 3x3 homography.

  A point on the homography's vanishing line maps to infinity: called eagerly
  that is a ValueError; inside jit the result there is Inf or NaN.
  """
  h = checks.values(h, 'h', shape=(3, 3), expected='a 3x3 homography')
  pts = checks.values(pts, 'pts', shape=(None, 2), expected='points [N, 2]')
  out = _apply(h.astype(jnp.float32), pts.astype(jnp.float32))
  if not isinstance(out, jax.core.Tracer) and not bool(
      jnp.all(jnp.isfinite(out))):
    raise errors.InputError(
        'h maps some of pts to infinity (points on its vanishing '
        'line); expected points where h[2] . (x, y, 1) != 0.')
  return out


def _dlt_rows(src, dst):
  x, y = src[..., 0], src[..., 1]
  u, v = dst[..., 0], dst[..., 1]
  zero, one = jnp.zeros_like(x), jnp.ones_like(x)
  r1 = jnp.stack([x, y, one, zero, zero, zero, -u * x, -u * y, -u], -1)
  r2 = jnp.stack([zero, zero, zero, x, y, one, -v * x, -v * y, -v], -1)
  return jnp.concatenate([r1, r2], -2)


def fit_homography(src, dst, weights):
  """Weighted least-squares DLT (normalised) of dst ~ H src; [N, 2] points.

  Needs at least 4 points of positive weight (checked when called eagerly).
  """
  src = checks.values(src, 'src', shape=(None, 2), expected='points [N, 2]')
  dst = checks.values(dst, 'dst', shape=(src.shape[0], 2),
                      expected=f'points [{src.shape[0]}, 2] like src')
  weights = checks.values(weights, 'weights', shape=(src.shape[0],),
                          expected=f'[{src.shape[0]}] per-point weights')
  src, dst = src.astype(jnp.float32), dst.astype(jnp.float32)
  weights = jnp.maximum(weights.astype(jnp.float32), 0.0)
  if not isinstance(weights, jax.core.Tracer) and int(
      jnp.sum(weights > 0)) < 4:
    raise errors.InputError(
        'fit_homography needs at least 4 points with positive '
        f'weight, got {int(jnp.sum(weights > 0))}.')
  return _check_fit(_fit_homography(src, dst, weights))


def _check_fit(h):
  """Eagerly, a ValueError for degenerate points (no finite homography)."""
  if not isinstance(h, jax.core.Tracer) and not bool(
      jnp.all(jnp.isfinite(h))):
    raise errors.InputError(
        'no finite homography fits these points: they are '
        'degenerate (coincident or collinear); expected at least '
        '4 points in general position.')
  return h


def _fit_homography(src, dst, weights):
  ts, td = _normaliser(src, weights), _normaliser(dst, weights)
  s = _apply(ts, src)
  d = _apply(td, dst)
  a = _dlt_rows(s, d) * jnp.concatenate([weights, weights])[:, None]
  _, _, vt = jnp.linalg.svd(a.T @ a)
  h = vt[-1].reshape(3, 3)
  h = jnp.linalg.inv(td) @ h @ ts
  return h / h[2, 2]


def _minimal_solve(src4, dst4):
  """H (h33 = 1) through 4 correspondences; batched [S, 4, 2] -> [S, 3, 3]."""
  x, y = src4[..., 0], src4[..., 1]
  u, v = dst4[..., 0], dst4[..., 1]
  zero, one = jnp.zeros_like(x), jnp.ones_like(x)
  r1 = jnp.stack([x, y, one, zero, zero, zero, -u * x, -u * y], -1)
  r2 = jnp.stack([zero, zero, zero, x, y, one, -v * x, -v * y], -1)
  a = jnp.concatenate([r1, r2], -2)  # [S, 8, 8]
  b = jnp.concatenate([u, v], -1)  # [S, 8]
  sol = jnp.linalg.solve(a + 1e-9 * jnp.eye(8), b[..., None])[..., 0]
  return jnp.concatenate([sol, jnp.ones(sol.shape[:-1] + (1,))], -1).reshape(
      sol.shape[:-1] + (3, 3))


def ransac_homography(key, src, dst, valid, *, num_hypotheses=2048,
                      threshold=3.0):
  """Robust H with dst ~ H src from putative matches.

  Args:
    key: PRNG key.
    src, dst: [N, 2] (x, y) matched points; valid: [N] bool.
    num_hypotheses: minimal samples scored in parallel.
    threshold: inlier reprojection error in pixels.

  Returns:
    (H [3, 3], inliers [N] bool, rmse of inlier reprojection error).
  """
  src = checks.values(src, 'src', shape=(None, 2), expected='points [N, 2]')
  n = src.shape[0]
  dst = checks.values(dst, 'dst', shape=(n, 2),
                      expected=f'points [{n}, 2] like src')
  src, dst = src.astype(jnp.float32), dst.astype(jnp.float32)
  valid = jnp.asarray(valid)
  if valid.shape != (n,):
    raise errors.InputError(
        f'valid: shape {valid.shape}, expected ({n},) booleans.')
  valid = valid.astype(bool)
  if not threshold > 0 or num_hypotheses < 1:
    raise errors.InputError(
        f'threshold={threshold} (pixels) and num_hypotheses='
        f'{num_hypotheses} must be positive.')
  if not isinstance(valid, jax.core.Tracer) and int(jnp.sum(valid)) < 4:
    raise errors.InputError(f'RANSAC needs at least 4 valid matches, got '
                            f'{int(jnp.sum(valid))}.')
  p = valid.astype(jnp.float32)
  p = p / jnp.maximum(jnp.sum(p), 1.0)
  picks = jax.random.choice(key, n, (num_hypotheses, 4), p=p)
  # Normalise for conditioning; hypotheses are solved in normalised frames.
  ts, td = _normaliser(src, valid.astype(jnp.float32)), _normaliser(
      dst, valid.astype(jnp.float32))
  s, d = _apply(ts, src), _apply(td, dst)
  hyps = _minimal_solve(s[picks], d[picks])
  hyps = jnp.linalg.inv(td)[None] @ hyps @ ts[None]
  # Inliers of hypotheses h [S', 3, 3] on all matches [S', N], written out
  # elementwise so that they fuse into one pass (as a batched matmul with a
  # contraction of 2 it runs several times slower on XLA:CPU).
  def inliers_of(h):
    h = h[:, :, :, None]  # [S', 3, 3, 1]
    x, y = src[None, :, 0], src[None, :, 1]
    z = h[:, 2, 0] * x + h[:, 2, 1] * y + h[:, 2, 2]
    ex = (h[:, 0, 0] * x + h[:, 0, 1] * y + h[:, 0, 2]) / z - dst[None, :, 0]
    ey = (h[:, 1, 0] * x + h[:, 1, 1] * y + h[:, 1, 2]) / z - dst[None, :, 1]
    # NaN/Inf errors (points at infinity) compare False: outliers.
    return (ex * ex + ey * ey < threshold**2) & valid[None]

  # Counted without keeping the [S, N] matrix, and the winner's row computed
  # again: on XLA:CPU much faster than reading the row out of a kept matrix
  # (`launch.benchmark --bench=panorama`; BUILD_NOTES.md).
  best = jnp.argmax(jnp.sum(inliers_of(hyps), axis=1))
  inliers = inliers_of(lax.dynamic_slice_in_dim(hyps, best, 1))[0]
  h = _fit_homography(src, dst, inliers.astype(jnp.float32))
  err = jnp.linalg.norm(_apply(h, src) - dst, axis=-1)
  inliers = (err < threshold) & valid
  h = _fit_homography(src, dst, inliers.astype(jnp.float32))
  err = jnp.linalg.norm(_apply(h, src) - dst, axis=-1)
  inliers = (err < threshold) & valid
  k = jnp.maximum(jnp.sum(inliers), 1)
  rmse = jnp.sqrt(jnp.sum(jnp.where(inliers, err**2, 0.0)) / k)
  return _check_fit(h), inliers, rmse
