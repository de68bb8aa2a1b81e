"""Latent interpolation and fusion."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gensynth.models import vae
from gensynth.steps import vae as vae_steps
from gensynth.synth import latent


def test_lerp_and_slerp_endpoints():
  z0, z1 = jnp.array([[1.0, 0.0], [0.0, 2.0]]), jnp.array([[0.0, 1.0],
                                                           [2.0, 0.0]])
  for method in ('linear', 'spherical'):
    path = latent.interpolate(z0, z1, 5, method=method)
    assert path.shape == (5, 2, 2)
    np.testing.assert_allclose(path[0], z0, atol=1e-6)
    np.testing.assert_allclose(path[-1], z1, atol=1e-6)


def test_slerp_follows_the_arc():
  # Orthogonal unit vectors: the midpoint is at 45 degrees with norm 1,
  # where lerp would cut the corner to norm 1/sqrt(2).
  z0, z1 = jnp.array([1.0, 0.0]), jnp.array([0.0, 1.0])
  mid = latent.slerp(z0, z1, jnp.array([0.5]))[0]
  np.testing.assert_allclose(mid, [np.sqrt(0.5)] * 2, atol=1e-6)
  t = jnp.linspace(0, 1, 7)
  np.testing.assert_allclose(jnp.linalg.norm(latent.slerp(z0, z1, t), axis=-1),
                             1.0, atol=1e-6)
  np.testing.assert_allclose(latent.lerp(z0, z1, jnp.array([0.5]))[0],
                             [0.5, 0.5])


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 6), st.floats(0.0, 1.0))
def test_slerp_parallel_and_scaled_latents_are_finite(d, t):
  z0 = jnp.ones(d)
  out = latent.slerp(z0, 3.0 * z0, jnp.array([t]))[0]
  np.testing.assert_allclose(out, (1 + 2 * t) * z0, rtol=1e-5)


def test_combine_weights_and_masks():
  z = jnp.stack([jnp.zeros((2, 4)), jnp.ones((2, 4))])
  np.testing.assert_allclose(latent.combine_latents(z, weights=[1.0, 3.0]),
                             0.75)
  mask = jnp.array([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]])
  np.testing.assert_allclose(latent.combine_latents(z, masks=mask),
                             [[0, 0, 1, 1]] * 2)
  with pytest.raises(ValueError, match='exactly one'):
    latent.combine_latents(z)
  with pytest.raises(ValueError, match='expected \\(2,\\)'):
    latent.combine_latents(z, weights=[1.0, 2.0, 3.0])
  with pytest.raises(ValueError, match="method='cubic'"):
    latent.interpolate(z[0], z[1], 3, method='cubic')
  with pytest.raises(ValueError, match='one shape'):
    latent.lerp(z[0], z[1, :1], jnp.array([0.5]))


def test_vae_fuse_of_one_image_with_itself_is_its_reconstruction():
  model = vae.VAE(latent_dim=4, widths=(8, 8), likelihood='bernoulli',
                  image_shape=(16, 16, 1))
  x = jax.random.uniform(jax.random.key(0), (3, 16, 16, 1))
  params = model.init(jax.random.key(1), x, None)['params']
  opts = dict(apply_fn=model.apply, likelihood='bernoulli',
              image_shape=(16, 16, 1))
  fuse = jax.jit(functools.partial(latent.vae_fuse, **opts))
  fused = fuse(params, jax.random.key(2), jnp.stack([x, x]),
               weights=jnp.array([0.2, 0.8]))
  rec = vae_steps.reconstruct(params, x, apply_fn=model.apply,
                              likelihood='bernoulli')
  np.testing.assert_allclose(fused, rec, atol=1e-5)
  # Weight 1 on the second set reproduces the second set's reconstruction.
  y = 1.0 - x
  fused = fuse(params, jax.random.key(2), jnp.stack([x, y]),
               weights=jnp.array([0.0, 1.0]))
  np.testing.assert_allclose(
      fused, vae_steps.reconstruct(params, y, apply_fn=model.apply,
                                   likelihood='bernoulli'), atol=1e-5)
  path = latent.vae_interpolate(params, jax.random.key(2), x, y, num=3, **opts)
  assert path.shape == (3, 3, 16, 16, 1)
  np.testing.assert_allclose(path[0], rec, atol=1e-5)
