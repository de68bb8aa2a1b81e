"""Adversarial losses and penalties against hand-computed values."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gensynth.losses import adversarial


def test_loss_values():
  real, fake = jnp.array([2.0, 0.5]), jnp.array([-1.0, 0.2])
  sp = lambda v: np.log1p(np.exp(v))
  assert adversarial.d_loss(real, fake, kind='ns') == pytest.approx(
      np.mean(sp(-np.array([2.0, 0.5]))) + np.mean(sp(np.array([-1.0, 0.2]))),
      rel=1e-6)
  assert adversarial.d_loss(real, fake, kind='hinge') == pytest.approx(
      (0 + 0.5) / 2 + (0 + 1.2) / 2)
  assert adversarial.d_loss(real, fake, kind='wgan') == pytest.approx(
      -0.4 - 1.25)
  assert adversarial.g_loss(fake, kind='ns') == pytest.approx(
      np.mean(sp(-np.array([-1.0, 0.2]))), rel=1e-6)
  assert adversarial.g_loss(fake, kind='hinge') == pytest.approx(0.4)
  with pytest.raises(ValueError, match="'lsgan' unknown"):
    adversarial.d_loss(real, fake, kind='lsgan')


def test_penalties_of_a_linear_critic():
  w = jnp.arange(12.0).reshape(1, 2, 2, 3) / 10
  d_fn = lambda x: jnp.sum(x * w, axis=(1, 2, 3))
  real = jax.random.normal(jax.random.key(0), (4, 2, 2, 3))
  fake = jax.random.normal(jax.random.key(1), (4, 2, 2, 3))
  norm = float(jnp.linalg.norm(w))
  assert adversarial.r1_penalty(d_fn, real) == pytest.approx(norm**2,
                                                             rel=1e-5)
  assert adversarial.gradient_penalty(jax.random.key(2), d_fn, real, fake) == \
      pytest.approx((norm - 1) ** 2, rel=1e-5)
