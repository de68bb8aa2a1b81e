"""Generative-model metrics on features: FID, KID, precision/recall, and the
class accuracy of conditional samples.

Every metric takes features [N, D] from a feature extractor: any function
images [N, H, W, C] in [0, 1] -> [N, D]. gensynth's default extractor is the
penultimate layer of its own classifier (`classifier_features`); an
Inception-style network plugs in the same way where its weights exist. FID and
KID statistics are accumulated in float64 on the host; the k-NN distances of
precision/recall run jitted on the device in fixed-size chunks.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from gensynth import errors


def _features(x, name):
  x = np.asarray(x)
  if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
    raise errors.InputError(
        f'{name} must be features [N, D] with N, D >= 1, got '
        f'shape {x.shape}.')
  if not np.all(np.isfinite(x)):
    raise errors.InputError(
        f'{name} holds NaN or Inf features; check the images fed '
        'to the feature extractor.')
  return x.astype(np.float64)


def _same_dim(a, b, names):
  if a.shape[1] != b.shape[1]:
    raise errors.InputError(
        f'{names[0]} has {a.shape[1]} feature dimensions, '
        f'{names[1]} {b.shape[1]}; use one feature extractor.')


def feature_stats(features):
  """Mean [D] and covariance [D, D] in float64; needs N > D samples."""
  x = _features(features, 'features')
  n, d = x.shape
  if n <= d:
    raise errors.InputError(
        f'FID needs more samples than feature dimensions: got N={n} for D={d}, '
        'so the covariance is singular and FID would be meaningless. Use at '
        f'least {d + 1} images (10,000 is standard) or a smaller feature layer.')
  return x.mean(0), np.cov(x, rowvar=False)


def _sqrt_psd(a):
  w, v = np.linalg.eigh((a + a.T) / 2)
  return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def fid_from_stats(mu1, sigma1, mu2, sigma2):
  """Frechet distance of N(mu1, sigma1) and N(mu2, sigma2).

  tr sqrt(sigma1 sigma2) is computed as tr sqrt(S sigma2 S) with S =
  sigma1^(1/2): both symmetric PSD, so eigendecompositions with negative
  round-off eigenvalues clipped to 0 replace a general (complex) sqrtm.
  """
  mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
  sigma1 = np.asarray(sigma1, np.float64)
  sigma2 = np.asarray(sigma2, np.float64)
  if mu1.ndim != 1 or not mu1.size or mu2.shape != mu1.shape or (
      sigma1.shape != (mu1.size, mu1.size)) or sigma2.shape != sigma1.shape:
    raise errors.InputError(
        f'inconsistent statistics: means {mu1.shape}, '
        f'{mu2.shape}; covariances {sigma1.shape}, '
        f'{sigma2.shape}; expected [D], [D], [D, D], [D, D] with '
        'D >= 1.')
  for name, v in (('mu1', mu1), ('sigma1', sigma1), ('mu2', mu2),
                  ('sigma2', sigma2)):
    if not np.all(np.isfinite(v)):
      raise errors.InputError(
          f'{name} holds NaN or Inf; expected finite statistics.')
  s = _sqrt_psd(sigma1)
  w = np.linalg.eigvalsh(s @ sigma2 @ s)
  tr_sqrt = np.sum(np.sqrt(np.clip(w, 0, None)))
  diff = mu1 - mu2
  return float(max(diff @ diff + np.trace(sigma1) + np.trace(sigma2)
                   - 2.0 * tr_sqrt, 0.0))


def fid(features_a, features_b):
  """FID between two feature sets (each needs more rows than columns)."""
  a, b = _features(features_a, 'features_a'), _features(features_b,
                                                        'features_b')
  _same_dim(a, b, ('features_a', 'features_b'))
  return fid_from_stats(*feature_stats(a), *feature_stats(b))


def _poly_kernel(x, y):
  return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x, y):
  """Unbiased MMD^2 with the cubic polynomial kernel (equal-size sets)."""
  x, y = _features(x, 'x'), _features(y, 'y')
  _same_dim(x, y, ('x', 'y'))
  m = x.shape[0]
  if m < 2 or y.shape[0] != m:
    raise errors.InputError(
        f'x and y must hold the same number of rows, at least 2 '
        f'(the unbiased estimate leaves the diagonal out), got '
        f'{x.shape[0]} and {y.shape[0]}.')
  kxx, kyy, kxy = _poly_kernel(x, x), _poly_kernel(y, y), _poly_kernel(x, y)
  off = lambda k: (k.sum() - np.trace(k)) / (m * (m - 1))
  return off(kxx) + off(kyy) - 2.0 * kxy.mean()


def kid(features_a, features_b, *, num_subsets=100, subset_size=1000, seed=0):
  """Kernel Inception Distance (Binkowski et al., 2018).

  The unbiased MMD^2 with k(x, y) = (x.y / D + 1)^3, averaged over
  `num_subsets` random subsets of `subset_size` rows from each set (clipped to
  the smaller set). Returns (mean, standard deviation over subsets).
  """
  a, b = _features(features_a, 'features_a'), _features(features_b,
                                                        'features_b')
  _same_dim(a, b, ('features_a', 'features_b'))
  if num_subsets < 1:
    raise errors.InputError(f'num_subsets={num_subsets} must be >= 1.')
  m = min(subset_size, len(a), len(b))
  if m < 2:
    raise errors.InputError(f'KID needs subsets of >= 2 rows; got {len(a)} and '
                            f'{len(b)} rows for subset_size={subset_size}.')
  rng = np.random.default_rng(seed)
  vals = np.array([mmd2_unbiased(a[rng.choice(len(a), m, replace=False)],
                                 b[rng.choice(len(b), m, replace=False)])
                   for _ in range(num_subsets)])
  return float(vals.mean()), float(vals.std())


@functools.partial(jax.jit, static_argnames='k')
def _kth_neighbour_dist2(queries, refs, *, k):
  """Squared distance from each query to its k-th nearest ref (k=1: nearest)."""
  d2 = _dist2(queries, refs)
  return -jax.lax.top_k(-d2, k)[0][:, -1]


def _dist2(a, b):
  d2 = (jnp.sum(a * a, 1)[:, None] + jnp.sum(b * b, 1)[None, :]
        - 2.0 * a @ b.T)
  return jnp.maximum(d2, 0.0)


@jax.jit
def _inside_any(queries, refs, radii2):
  return jnp.any(_dist2(queries, refs) <= radii2[None, :], axis=1)


def _chunked(fn, queries, chunk, *args, **kwargs):
  """fn over fixed-size chunks of `queries` (last one padded): one compile."""
  n = len(queries)
  out = []
  for start in range(0, n, chunk):
    q = queries[start:start + chunk]
    pad = chunk - len(q)
    if pad:
      q = np.concatenate([q, np.zeros((pad,) + q.shape[1:], q.dtype)])
    out.append(np.asarray(fn(q, *args, **kwargs))[:chunk - pad])
  return np.concatenate(out)


def knn_radii2(features, *, k=3, chunk=1000):
  """Squared distance of each row to its k-th nearest other row."""
  x = _features(features, 'features').astype(np.float32)
  if k < 1 or k >= len(x):
    raise errors.InputError(
        f'k={k} must be in [1, {len(x) - 1}] for {len(x)} rows '
        '(the k-th nearest other row must exist).')
  if chunk < 1:
    raise errors.InputError(f'chunk={chunk} must be positive.')
  x = jnp.asarray(x)
  return _chunked(_kth_neighbour_dist2, np.asarray(x), min(chunk, len(x)), x,
                  k=k + 1)  # +1: every row is its own nearest neighbour.


def precision_recall(real_features, fake_features, *, k=3, chunk=1000):
  """Improved precision and recall (Kynkaanniemi et al., 2019).

  Each set's manifold is the union of balls around its points with radius the
  distance to the k-th nearest neighbour in the same set. Precision is the
  fraction of fakes inside the real manifold, recall the fraction of reals
  inside the fake manifold.
  """
  real = _features(real_features, 'real_features').astype(np.float32)
  fake = _features(fake_features, 'fake_features').astype(np.float32)
  _same_dim(real, fake, ('real_features', 'fake_features'))
  if k < 1 or k >= min(len(real), len(fake)):
    raise errors.InputError(
        f'k={k} must be in [1, {min(len(real), len(fake)) - 1}] '
        f'for {len(real)} real and {len(fake)} fake rows.')
  r_real, r_fake = (knn_radii2(real, k=k, chunk=chunk),
                    knn_radii2(fake, k=k, chunk=chunk))
  inside = lambda q, refs, radii: _chunked(
      _inside_any, q, min(chunk, len(q)), jnp.asarray(refs),
      jnp.asarray(radii))
  return {'precision': float(np.mean(inside(fake, real, r_real))),
          'recall': float(np.mean(inside(real, fake, r_fake)))}


def class_accuracy(logits, requested, num_classes):
  """Accuracy of a classifier on samples generated for `requested` classes.

  Returns {'accuracy': mean over samples, 'per_class': [num_classes] list,
  None for a class with no samples}.
  """
  logits, requested = np.asarray(logits), np.asarray(requested)
  if (logits.ndim != 2 or requested.shape != logits.shape[:1] or
      not logits.shape[0]):
    raise errors.InputError(
        f'logits [N, K] and requested labels [N] with N >= 1 '
        f'expected, got {logits.shape} and {requested.shape}.')
  if num_classes < 1 or logits.shape[1] < num_classes:
    raise errors.InputError(f'num_classes={num_classes} must be in [1, '
                            f'{logits.shape[1]}] (the logits\' K).')
  if not np.issubdtype(requested.dtype, np.integer) or requested.min() < 0 or (
      requested.max() >= num_classes):
    raise errors.InputError(
        f'requested labels must be integers in [0, '
        f'{num_classes - 1}], got {requested.dtype} values in '
        f'[{requested.min()}, {requested.max()}].')
  if not np.all(np.isfinite(logits)):
    raise errors.InputError(
        'logits hold NaN or Inf; check the classifier input.')
  hit = (logits.argmax(-1) == requested).astype(np.float64)
  per = [float(hit[requested == c].mean()) if np.any(requested == c)
         else None for c in range(num_classes)]
  return {'accuracy': float(hit.mean()), 'per_class': per}


def labels_like(labels, n, num_classes):
  """`n` class ids whose counts follow the class frequencies of `labels`.

  The class-conditional model's image distribution is p_G(x | y) under the
  data's p(y); comparing it with real images needs the same class mix. The
  counts are the largest-remainder rounding of n * frequency (deterministic);
  the ids cycle through the classes so every batch of samples mixes them.
  """
  labels = np.asarray(labels)
  if labels.ndim != 1 or not labels.size or not np.issubdtype(
      labels.dtype, np.integer):
    raise errors.InputError(
        f'labels must be integer class ids [N] with N >= 1, got '
        f'{labels.dtype} of shape {labels.shape}.')
  if labels.min() < 0 or labels.max() >= num_classes:
    raise errors.InputError(
        f'labels must be in [0, {num_classes - 1}], got values in '
        f'[{labels.min()}, {labels.max()}].')
  if n < 1:
    raise errors.InputError(f'n={n} labels requested; expected n >= 1.')
  quota = np.bincount(labels, minlength=num_classes) * (n / labels.size)
  counts = np.floor(quota).astype(np.int64)
  extra = np.argsort(counts - quota, kind='stable')[:n - counts.sum()]
  counts[extra] += 1
  # Round-robin over the classes that still have samples left.
  rank = np.concatenate([np.arange(c) for c in counts])
  ids = np.repeat(np.arange(num_classes), counts)
  return ids[np.lexsort((ids, rank))].astype(np.int32)
