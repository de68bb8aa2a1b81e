import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from gensynth.losses import vae as L


def test_gaussian_kl_hand_values_and_monte_carlo():
  np.testing.assert_allclose(L.gaussian_kl(jnp.array([1.0]), jnp.array([0.0])),
                             0.5)
  np.testing.assert_allclose(
      L.gaussian_kl(jnp.zeros(3), jnp.log(jnp.array([2.0, 2.0, 2.0]))),
      1.5 * (1 - math.log(2)), rtol=1e-6)
  mean, logvar = jnp.array([0.3, -1.2]), jnp.array([-0.5, 0.4])
  z = L.sample_gaussian(jax.random.key(0), mean, logvar, 200_000)
  mc = jnp.mean(L.log_normal(z, mean, logvar) - L.log_std_normal(z))
  np.testing.assert_allclose(mc, L.gaussian_kl(mean, logvar), atol=0.01)


def test_log_normal_matches_scipy():
  z, m, lv = np.array([0.2, -1.0]), np.array([0.5, 0.1]), np.array([0.3, -0.7])
  ref = stats.norm(m, np.exp(0.5 * lv)).logpdf(z).sum()
  np.testing.assert_allclose(L.log_normal(z, m, lv), ref, rtol=1e-6)


def test_bernoulli_hand_case():
  logits = jnp.array([0.0, 2.0, -1.0, 0.0]).reshape(1, 2, 2, 1)
  x = jnp.array([1.0, 1.0, 0.0, 0.0]).reshape(1, 2, 2, 1)
  sig = lambda a: 1 / (1 + math.exp(-a))
  ref = math.log(0.5) + math.log(sig(2)) + math.log(1 - sig(-1)) + math.log(0.5)
  np.testing.assert_allclose(
      L.log_likelihood(logits, x, likelihood='bernoulli'), [ref], rtol=1e-6)


def test_discretized_logistic_normalises_over_256_bins():
  values = (jnp.arange(256) / 127.5 - 1.0).reshape(256, 1, 1, 1)
  for mean, log_scale in [(0.1, -2.0), (-0.95, -4.0), (0.999, -1.0)]:
    params = jnp.broadcast_to(jnp.array([mean, log_scale]), (256, 1, 1, 2))
    ll = L.log_likelihood(params, values, likelihood='logistic')
    np.testing.assert_allclose(jnp.sum(jnp.exp(ll)), 1.0, rtol=2e-3)


def test_gaussian_likelihood_matches_scipy():
  x, m = np.array([0.3, 0.1]).reshape(1, 1, 2, 1), np.zeros((1, 1, 2, 1))
  ref = stats.norm(0, 0.2).logpdf(x).sum()
  np.testing.assert_allclose(
      L.log_likelihood(m, x, likelihood='gaussian', gaussian_scale=0.2), [ref],
      rtol=1e-6)


def _linear_gaussian(sigma, enc_shift=0.0):
  """p(z)=N(0,1), p(x|z)=N(z, sigma^2) on a 1x1x1 image; p(x)=N(0,1+s^2)."""
  def encode(x, labels):
    del labels
    x = x.reshape(x.shape[0], 1)
    return (x / (1 + sigma**2) + enc_shift,
            jnp.full_like(x, math.log(sigma**2 / (1 + sigma**2))))

  def decode(z, labels, x):
    del labels, x
    return z.reshape(-1, 1, 1, 1)
  return encode, decode


def test_iwae_is_exact_with_the_true_posterior():
  sigma = 0.5
  enc, dec = _linear_gaussian(sigma)
  x = jnp.array([-1.3, 0.0, 0.7]).reshape(3, 1, 1, 1)
  ll = L.iwae_log_likelihood(jax.random.key(0), enc, dec, x, None,
                             num_samples=12, chunk_size=4,
                             likelihood='gaussian', gaussian_scale=sigma)
  ref = stats.norm(0, math.sqrt(1 + sigma**2)).logpdf(np.ravel(x))
  np.testing.assert_allclose(ll, ref, rtol=1e-5)


def test_iwae_tightens_with_k_and_chunks_merge_exactly():
  sigma = 0.5
  enc, dec = _linear_gaussian(sigma, enc_shift=0.8)  # a wrong posterior
  x = jnp.linspace(-2, 2, 64).reshape(64, 1, 1, 1)
  truth = stats.norm(0, math.sqrt(1 + sigma**2)).logpdf(np.ravel(x))
  bound = lambda k, c, key=0: np.asarray(L.iwae_log_likelihood(
      jax.random.key(key), enc, dec, x, None, num_samples=k, chunk_size=c,
      likelihood='gaussian', gaussian_scale=sigma))
  b1, b1000 = bound(1, 1), bound(1000, 100)
  assert np.mean(b1) < np.mean(b1000) < np.mean(truth)
  assert np.mean(truth) - np.mean(b1000) < 0.02
  # Reference: the same per-chunk samples pooled into one logsumexp.
  key = jax.random.key(3)
  mean, logvar = enc(x, None)
  zs = jnp.concatenate([L.sample_gaussian(jax.random.fold_in(key, c), mean,
                                          logvar, 10) for c in range(3)])
  log_w = (L.log_likelihood(zs.reshape(-1, 1, 1, 1), jnp.tile(x, (30, 1, 1, 1)),
                            likelihood='gaussian', gaussian_scale=sigma
                            ).reshape(30, 64) +
           L.log_std_normal(zs) - L.log_normal(zs, mean, logvar))
  np.testing.assert_allclose(bound(30, 10, key=3), L.iwae_bound(log_w),
                             rtol=1e-5)


def test_iwae_rejects_uneven_chunks():
  enc, dec = _linear_gaussian(0.5)
  with pytest.raises(ValueError, match='multiple of chunk_size'):
    L.iwae_log_likelihood(jax.random.key(0), enc, dec, jnp.zeros((1, 1, 1, 1)),
                          None, num_samples=10, chunk_size=3,
                          likelihood='gaussian')
