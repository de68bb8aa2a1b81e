"""VAE bounds: ELBO and the importance-weighted bound (IWAE).

All log-densities are per example (summed over pixels / latent dims), in nats.
"""

import math

import jax
import jax.numpy as jnp
from jax import lax

from gensynth import errors

_LOG_2PI = math.log(2 * math.pi)


def gaussian_kl(mean, logvar):
  """KL(N(mean, exp(logvar)) || N(0, I)) per example, [..., D] -> [...]."""
  return 0.5 * jnp.sum(jnp.exp(logvar) + mean**2 - 1.0 - logvar, axis=-1)


def log_normal(z, mean, logvar):
  """log N(z; mean, exp(logvar)) summed over the last axis."""
  return -0.5 * jnp.sum(_LOG_2PI + logvar + (z - mean)**2 * jnp.exp(-logvar),
                        axis=-1)


def log_std_normal(z):
  return -0.5 * jnp.sum(_LOG_2PI + z**2, axis=-1)


def tile_rows(a, k):
  """`a` [N, ...] repeated k times along the first axis -> [k * N, ...]
  (row i * N + n is a[n]), for labels [N] as for conditions [N, D]."""
  return jnp.tile(a, (k,) + (1,) * (a.ndim - 1))


def sample_gaussian(key, mean, logvar, num_samples=None):
  """Reparameterised samples; with num_samples the result is [K, *mean.shape]."""
  shape = mean.shape if num_samples is None else (num_samples,) + mean.shape
  eps = jax.random.normal(key, shape, mean.dtype)
  return mean + jnp.exp(0.5 * logvar) * eps


def log_likelihood(params, x, *, likelihood, gaussian_scale=0.1):
  """log p(x | decoder output) per example, [N, H, W, C] -> [N].

  Args:
    params: decoder output [N, H, W, C*P] (logits for 'bernoulli', means for
      'gaussian', means and log-scales for 'logistic').
    x: images; {0, 1} for 'bernoulli', any real for 'gaussian', 8-bit values
      mapped to [-1, 1] for the discretised 'logistic'.
    likelihood: 'bernoulli', 'gaussian' or 'logistic'.
    gaussian_scale: fixed standard deviation of the Gaussian likelihood.
  """
  if likelihood == 'bernoulli':
    ll = -(jax.nn.softplus(-params) * x + jax.nn.softplus(params) * (1 - x))
  elif likelihood == 'gaussian':
    ll = -0.5 * (_LOG_2PI + 2 * math.log(gaussian_scale) +
                 ((x - params) / gaussian_scale)**2)
  elif likelihood == 'logistic':
    ll = _discretized_logistic(x, *jnp.split(params, 2, axis=-1))
  else:
    raise errors.InputError(
        f'likelihood {likelihood!r} unknown; expected bernoulli, '
        'gaussian or logistic.')
  return jnp.sum(ll.reshape(ll.shape[0], -1), axis=-1)


def _discretized_logistic(x, mean, log_scale, num_bins=256):
  """Per-pixel log-probability of 8-bit x in [-1, 1] under a binned logistic."""
  log_scale = jnp.maximum(log_scale, -7.0)
  inv_s = jnp.exp(-log_scale)
  half = 1.0 / (num_bins - 1)
  plus, minus = inv_s * (x - mean + half), inv_s * (x - mean - half)
  cdf_delta = jax.nn.sigmoid(plus) - jax.nn.sigmoid(minus)
  log_cdf_plus = plus - jax.nn.softplus(plus)  # log sigmoid(plus), x = -1 edge
  log_one_minus_cdf_min = -jax.nn.softplus(minus)  # x = +1 edge
  mid = inv_s * (x - mean)
  log_pdf_mid = mid - log_scale - 2.0 * jax.nn.softplus(mid)
  inner = jnp.where(cdf_delta > 1e-5, jnp.log(jnp.maximum(cdf_delta, 1e-12)),
                    log_pdf_mid - math.log((num_bins - 1) / 2))
  return jnp.where(x < -0.999, log_cdf_plus,
                   jnp.where(x > 0.999, log_one_minus_cdf_min, inner))


def elbo(log_lik, kl, *, beta=1.0):
  """Per-example ELBO = log p(x|z) - beta * KL."""
  return log_lik - beta * kl


def iwae_bound(log_weights, axis=0):
  """log (1/K) sum_k w_k, the K-sample importance-weighted bound."""
  k = log_weights.shape[axis]
  return jax.nn.logsumexp(log_weights, axis=axis) - math.log(k)


def iwae_log_likelihood(key, encode_fn, decode_fn, x, labels, *, num_samples,
                        chunk_size, likelihood, gaussian_scale=0.1):
  """IWAE estimate of log p(x) per example, K samples drawn in chunks.

  Memory holds one chunk of `chunk_size` decoder passes per example at a time,
  so K=1000 fits wherever K=chunk_size does; log-weights are merged with a
  running logsumexp.

  Args:
    key: PRNG key.
    encode_fn: (x, labels) -> (mean, logvar).
    decode_fn: (z [M, D], labels [M], x [M, H, W, C]) -> decoder output
      [M, H, W, C*P] (x is the image, for autoregressive decoders).
    x: [N, H, W, C] images; labels: [N] or None.
    num_samples: K, a multiple of chunk_size.
    chunk_size: samples per chunk.
    likelihood: see `log_likelihood`.
    gaussian_scale: see `log_likelihood`.

  Returns:
    [N] lower bounds on log p(x) in nats.
  """
  if num_samples % chunk_size:
    raise errors.InputError(f'num_samples={num_samples} must be a multiple of '
                            f'chunk_size={chunk_size}.')
  mean, logvar = encode_fn(x, labels)
  n = x.shape[0]
  rep_labels = None if labels is None else tile_rows(labels, chunk_size)
  x_rep = jnp.tile(x, (chunk_size, 1, 1, 1))

  def chunk(carry, k):
    z = sample_gaussian(jax.random.fold_in(key, k), mean, logvar, chunk_size)
    out = decode_fn(z.reshape(chunk_size * n, -1), rep_labels, x_rep)
    log_px = log_likelihood(out, x_rep, likelihood=likelihood,
                            gaussian_scale=gaussian_scale).reshape(chunk_size, n)
    log_w = log_px + log_std_normal(z) - log_normal(z, mean, logvar)
    return jnp.logaddexp(carry, jax.nn.logsumexp(log_w, axis=0)), None

  init = jnp.full((n,), -jnp.inf, mean.dtype)
  total, _ = lax.scan(chunk, init, jnp.arange(num_samples // chunk_size))
  return total - math.log(num_samples)
