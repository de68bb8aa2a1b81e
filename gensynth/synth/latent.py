"""Synthesis in a generative model's latent space.

Interpolation between latents (linear or spherical) for GAN and VAE, and
fusion of real images through a trained VAE: encode each image, combine the
posterior means (weights, or per-dimension masks), decode. All functions are
pure and jit/vmap-friendly; latents are [..., D] arrays.
"""

import numbers

import jax
import jax.numpy as jnp

from gensynth import errors
from gensynth.losses import vae as vae_losses
from gensynth.steps import vae as vae_steps
from gensynth.synth import checks


def _check_pair(z0, z1, t):
  """Validated (z0, z1, t reshaped to [T, 1, ..., 1]) in one float dtype."""
  z0 = checks.values(z0, 'z0', min_ndim=1, expected='latents [..., D]')
  z1 = checks.values(z1, 'z1', min_ndim=1, expected='latents [..., D]')
  if z0.shape != z1.shape or not z0.shape[-1]:
    raise errors.InputError(
        f'z0 and z1 must be latents [..., D] of one shape with '
        f'D >= 1, got {z0.shape} and {z1.shape}.')
  t = checks.values(t, 't', min_ndim=0, expected='interpolation weights [T]')
  dtype = jnp.promote_types(z0.dtype, z1.dtype)
  t = t.astype(dtype).reshape((-1,) + (1,) * z0.ndim)
  return z0.astype(dtype), z1.astype(dtype), t


def lerp(z0, z1, t):
  """(1 - t) z0 + t z1 for each t in `t` [T]: returns [T, ..., D]."""
  z0, z1, t = _check_pair(z0, z1, t)
  return (1.0 - t) * z0 + t * z1


def slerp(z0, z1, t, *, eps=1e-6):
  """Spherical interpolation along the great circle through z0 and z1.

  Norms are interpolated linearly, directions along the arc, so paths between
  Gaussian latents stay at typical radii. Parallel latents (angle < eps) fall
  back to lerp. Returns [T, ..., D].
  """
  z0, z1, t = _check_pair(z0, z1, t)
  n0 = jnp.linalg.norm(z0, axis=-1, keepdims=True)
  n1 = jnp.linalg.norm(z1, axis=-1, keepdims=True)
  u0, u1 = z0 / jnp.maximum(n0, eps), z1 / jnp.maximum(n1, eps)
  cos = jnp.clip(jnp.sum(u0 * u1, -1, keepdims=True), -1.0, 1.0)
  omega = jnp.arccos(cos)
  sin = jnp.sin(omega)
  small = sin < eps
  safe = jnp.where(small, 1.0, sin)
  w0 = jnp.where(small, 1.0 - t, jnp.sin((1.0 - t) * omega) / safe)
  w1 = jnp.where(small, t, jnp.sin(t * omega) / safe)
  direction = w0 * u0 + w1 * u1
  direction = direction / jnp.maximum(
      jnp.linalg.norm(direction, axis=-1, keepdims=True), eps)
  return direction * ((1.0 - t) * n0 + t * n1)


def interpolate(z0, z1, num, *, method='spherical'):
  """`num` latents from z0 to z1 inclusive: [num, ..., D]."""
  if not isinstance(num, numbers.Integral) or num < 2:
    raise errors.InputError(
        f'num={num!r} interpolation steps: need an integer >= 2.')
  t = jnp.linspace(0.0, 1.0, num)
  if method == 'linear':
    return lerp(z0, z1, t)
  if method == 'spherical':
    return slerp(z0, z1, t)
  raise errors.InputError(f"method={method!r} unknown; expected 'linear' or "
                          "'spherical'.")


def combine_latents(latents, *, weights=None, masks=None):
  """Fuses K latents [K, ..., D] into one [..., D].

  weights: [K] (or broadcastable to [K, ...]) non-negative, normalised to sum
    to 1: a weighted mean.
  masks: [K, D] (or broadcastable to latents) non-negative per-dimension
    weights, normalised over K per dimension: e.g. one-hot masks take each
    dimension from one image.
  Exactly one of weights, masks.
  """
  latents = checks.values(latents, 'latents', min_ndim=2,
                          expected='[K, ..., D] latents')
  if not latents.shape[0] or not latents.shape[-1]:
    raise errors.InputError(
        f'latents must be [K, ..., D] with K, D >= 1, got shape '
        f'{latents.shape}.')
  if (weights is None) == (masks is None):
    raise errors.InputError('pass exactly one of weights=, masks=.')
  k = latents.shape[0]
  if weights is not None:
    w = checks.values(weights, 'weights', min_ndim=1).astype(latents.dtype)
    if w.shape[:1] != (k,) or w.ndim > latents.ndim:
      raise errors.InputError(
          f'weights shape {w.shape}: expected ({k},) for {k} '
          'latents.')
    w = w.reshape(w.shape + (1,) * (latents.ndim - w.ndim))
  else:
    w = checks.values(masks, 'masks', min_ndim=2).astype(latents.dtype)
    if w.shape[0] != k or w.shape[-1] != latents.shape[-1] or (
        w.ndim > latents.ndim):
      raise errors.InputError(
          f'masks shape {w.shape}: expected ({k}, ..., '
          f'{latents.shape[-1]}) for latents {latents.shape}.')
    w = w.reshape((k,) + (1,) * (latents.ndim - w.ndim) + w.shape[1:])
  _check_non_negative(w, 'weights' if masks is None else 'masks')
  total = jnp.sum(w, axis=0)
  return jnp.sum(w * latents, axis=0) / jnp.where(total > 0, total, 1.0)


def _check_non_negative(w, name):
  if not isinstance(w, jax.core.Tracer) and bool(jnp.any(w < 0)):
    raise errors.InputError(
        f'{name}: negative values; expected non-negative weights '
        '(they are normalised to sum to 1).')


def vae_fuse(params, key, images, labels=None, *, apply_fn, likelihood,
             image_shape, autoregressive=False, weights=None, masks=None):
  """Fuses K image sets [K, N, H, W, C] through a VAE's latent space.

  Each image is encoded to its posterior mean; the K means of each of the N
  positions are combined (combine_latents) and decoded. labels [N] for a
  conditional VAE. Returns [N, H, W, C] in the data's value range.
  """
  if images.ndim != 5:
    raise errors.InputError(f'images must be [K, N, H, W, C], got shape '
                            f'{images.shape}.')
  k, n = images.shape[:2]
  flat_labels = None if labels is None else vae_losses.tile_rows(labels, k)
  means = vae_steps.encode_mean(params, images.reshape((k * n,) +
                                                       images.shape[2:]),
                                flat_labels, apply_fn=apply_fn)
  z = combine_latents(means.reshape(k, n, -1), weights=weights, masks=masks)
  return vae_steps.decode_latents(params, key, z, labels, apply_fn=apply_fn,
                                  likelihood=likelihood,
                                  image_shape=image_shape,
                                  autoregressive=autoregressive)


def vae_interpolate(params, key, x0, x1, labels=None, *, apply_fn, likelihood,
                    image_shape, num, method='spherical',
                    autoregressive=False):
  """Decodes `num` latents between the encodings of images x0 and x1 [N, ...].

  Returns [num, N, H, W, C].
  """
  enc = lambda x: vae_steps.encode_mean(params, x, labels, apply_fn=apply_fn)
  path = interpolate(enc(x0), enc(x1), num, method=method)
  tiled = None if labels is None else vae_losses.tile_rows(labels, num)
  out = vae_steps.decode_latents(
      params, key, path.reshape(-1, path.shape[-1]), tiled,
      apply_fn=apply_fn, likelihood=likelihood, image_shape=image_shape,
      autoregressive=autoregressive)
  return out.reshape((num, x0.shape[0]) + out.shape[1:])
