"""FID, KID, precision/recall and class accuracy on cases with known answers."""

import numpy as np
import pytest
import scipy.linalg

from gensynth.metrics import generative


def _psd(rng, d):
  a = rng.normal(size=(d, d))
  return a @ a.T / d + 0.1 * np.eye(d)


def test_fid_identical_sets_is_zero(rng):
  x = rng.normal(size=(500, 8))
  assert generative.fid(x, x) == pytest.approx(0.0, abs=1e-8)


def test_fid_of_diagonal_gaussians_has_closed_form(rng):
  a, b = rng.uniform(0.5, 2, 6), rng.uniform(0.5, 2, 6)
  mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
  want = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
  got = generative.fid_from_stats(mu1, np.diag(a), mu2, np.diag(b))
  assert got == pytest.approx(want, rel=1e-10)


def test_fid_matches_scipy_sqrtm_for_general_covariances(rng):
  s1, s2 = _psd(rng, 10), _psd(rng, 10)
  mu1, mu2 = rng.normal(size=10), rng.normal(size=10)
  ref = (np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2)
         - 2 * np.trace(scipy.linalg.sqrtm(s1 @ s2).real))
  assert generative.fid_from_stats(mu1, s1, mu2, s2) == pytest.approx(
      ref, rel=1e-8)


def test_fid_of_singular_covariance_stays_finite(rng):
  # Rank-deficient covariances make plain sqrtm return complex noise; the
  # symmetric form clips the round-off negatives instead.
  v = rng.normal(size=(10, 3))
  s = v @ v.T
  assert generative.fid_from_stats(np.zeros(10), s, np.zeros(10), s) == \
      pytest.approx(0.0, abs=1e-6)


def test_fid_of_shifted_gaussian_samples(rng):
  shift = np.array([1.0, -2.0, 0.5])
  x = rng.normal(size=(20000, 3))
  y = rng.normal(size=(20000, 3)) + shift
  assert generative.fid(x, y) == pytest.approx(shift @ shift, abs=0.02)


def test_fid_rejects_fewer_samples_than_dimensions(rng):
  with pytest.raises(ValueError, match='N=16 for D=16'):
    generative.fid(rng.normal(size=(16, 16)), rng.normal(size=(100, 16)))
  with pytest.raises(ValueError, match='feature dimensions'):
    generative.fid(rng.normal(size=(100, 4)), rng.normal(size=(100, 5)))
  with pytest.raises(ValueError, match='NaN or Inf'):
    generative.fid(np.full((100, 4), np.nan), rng.normal(size=(100, 4)))


def _mmd2_reference(x, y):
  m = len(x)
  k = lambda a, b: (np.dot(a, b) / len(a) + 1) ** 3
  xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
  yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
  xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
  return xx / (m * (m - 1)) + yy / (m * (m - 1)) - 2 * xy / m**2


def test_mmd_matches_elementwise_reference(rng):
  x, y = rng.normal(size=(12, 5)), rng.normal(size=(12, 5)) + 0.3
  assert generative.mmd2_unbiased(x, y) == pytest.approx(
      _mmd2_reference(x, y), rel=1e-10)


def test_kid_is_unbiased_near_zero_and_grows_with_shift(rng):
  x, y = rng.normal(size=(2000, 8)), rng.normal(size=(2000, 8))
  same, std = generative.kid(x, y, num_subsets=50, subset_size=500)
  assert abs(same) < 2 * std  # subsets overlap: their std bounds the mean
  shifted, _ = generative.kid(x, y + 1.0, num_subsets=50, subset_size=500)
  assert shifted > 100 * abs(same)


def test_kid_rejects_tiny_sets(rng):
  with pytest.raises(ValueError, match='subsets of >= 2 rows'):
    generative.kid(rng.normal(size=(1, 3)), rng.normal(size=(5, 3)))


def _pr_reference(real, fake, k):
  d = lambda a, b: np.sqrt(((a[:, None] - b[None]) ** 2).sum(-1))
  r_real = np.sort(d(real, real), 1)[:, k]
  r_fake = np.sort(d(fake, fake), 1)[:, k]
  precision = np.mean((d(fake, real) <= r_real[None]).any(1))
  recall = np.mean((d(real, fake) <= r_fake[None]).any(1))
  return precision, recall


def test_precision_recall_match_brute_force(rng):
  real = rng.normal(size=(300, 4))
  fake = rng.normal(size=(200, 4)) * 0.5 + 0.7
  got = generative.precision_recall(real, fake, k=3, chunk=64)
  p, r = _pr_reference(real, fake, 3)
  assert got['precision'] == pytest.approx(p, abs=1e-9)
  assert got['recall'] == pytest.approx(r, abs=1e-9)
  assert 0.0 < got['recall'] < got['precision'] < 1.0


def test_precision_recall_identical_and_disjoint(rng):
  x = rng.normal(size=(200, 4))
  assert generative.precision_recall(x, x) == {'precision': 1.0,
                                               'recall': 1.0}
  far = generative.precision_recall(x, x + 100.0)
  assert far == {'precision': 0.0, 'recall': 0.0}
  with pytest.raises(ValueError, match='k=500'):
    generative.precision_recall(x, x, k=500)


def test_class_accuracy():
  logits = np.eye(3)[[0, 1, 2, 2]]
  out = generative.class_accuracy(logits, np.array([0, 1, 2, 1]), 3)
  assert out['accuracy'] == 0.75
  assert out['per_class'] == [1.0, 0.5, 1.0]


@pytest.mark.parametrize('n', [1, 7, 10, 999, 10_000])
def test_labels_like_follows_class_frequencies(rng, n):
  labels = rng.choice(10, size=6000, p=np.linspace(1, 3, 10) / 20)
  ids = generative.labels_like(labels, n, 10)
  assert ids.shape == (n,) and ids.dtype == np.int32
  counts = np.bincount(ids, minlength=10)
  quota = np.bincount(labels, minlength=10) * n / labels.size
  # Largest remainder: every count is its quota rounded down or up.
  assert np.all(np.abs(counts - quota) < 1)
  assert counts.sum() == n
  # Round-robin order: the first ids name every sampled class once.
  present = int(np.sum(counts > 0))
  assert sorted(ids[:present].tolist()) == np.flatnonzero(counts).tolist()


def test_labels_like_rejects_bad_labels():
  with pytest.raises(ValueError, match=r'in \[0, 2\]'):
    generative.labels_like(np.array([0, 3]), 4, 3)
  with pytest.raises(ValueError, match='integer class ids'):
    generative.labels_like(np.array([0.5]), 4, 3)
  with pytest.raises(ValueError, match='n=0'):
    generative.labels_like(np.array([0, 1]), 0, 3)
