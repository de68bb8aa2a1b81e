"""Adversarial losses and gradient penalties (free functions of arrays).

Logits are D's raw outputs [N]. Every loss returns a scalar batch mean.
"""

import jax
import jax.numpy as jnp

from gensynth import errors

KINDS = ('ns', 'hinge', 'wgan')


def _check(kind):
  if kind not in KINDS:
    raise errors.InputError(
        f'adversarial loss {kind!r} unknown; expected one of '
        f'{KINDS}.')


def d_loss(real_logits, fake_logits, *, kind):
  """Discriminator loss: 'ns' (logistic), 'hinge' or 'wgan' (critic)."""
  _check(kind)
  if kind == 'ns':
    real = jnp.mean(jax.nn.softplus(-real_logits))
  elif kind == 'hinge':
    real = jnp.mean(jax.nn.relu(1.0 - real_logits))
  else:
    real = -jnp.mean(real_logits)
  return real + jnp.mean(d_fake_terms(fake_logits, kind=kind))


def d_fake_terms(fake_logits, *, kind):
  """The fake half of `d_loss` per input (its mean is that half): what D
  pays for calling each input real (e.g. a real image paired with another
  example's condition)."""
  _check(kind)
  if kind == 'ns':
    return jax.nn.softplus(fake_logits)
  if kind == 'hinge':
    return jax.nn.relu(1.0 + fake_logits)
  return fake_logits


def g_loss(fake_logits, *, kind):
  """Generator loss: non-saturating -log D(G(z)) for 'ns', -D(G(z)) else."""
  _check(kind)
  if kind == 'ns':
    return jnp.mean(jax.nn.softplus(-fake_logits))
  return -jnp.mean(fake_logits)


def _input_grad_sq_norm(d_fn, x):
  """||d D(x_i) / d x_i||^2 per sample (D maps [N, ...] -> [N])."""
  grads = jax.grad(lambda x_: jnp.sum(d_fn(x_)))(x)
  return jnp.sum(grads.reshape(grads.shape[0], -1) ** 2, axis=-1)


def gradient_penalty(key, d_fn, real, fake):
  """WGAN-GP: mean (||grad D(x_hat)|| - 1)^2 at random interpolates x_hat."""
  eps = jax.random.uniform(key, (real.shape[0],) + (1,) * (real.ndim - 1))
  x_hat = eps * real + (1.0 - eps) * fake
  norm = jnp.sqrt(_input_grad_sq_norm(d_fn, x_hat) + 1e-12)
  return jnp.mean((norm - 1.0) ** 2)


def r1_penalty(d_fn, real):
  """R1 (Mescheder et al., 2018): mean ||grad D(x)||^2 at real images."""
  return jnp.mean(_input_grad_sq_norm(d_fn, real))
