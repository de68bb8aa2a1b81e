import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gensynth.models import vae


@pytest.mark.parametrize('shape,widths', [((28, 28, 1), (8, 16, 32)),
                                          ((32, 32, 3), (8, 16, 32)),
                                          ((64, 64, 3), (8, 8, 16, 16))])
def test_shapes(shape, widths):
  model = vae.VAE(image_shape=shape, latent_dim=5, widths=widths,
                  likelihood='logistic', blocks_per_level=1)
  x = jnp.zeros((2,) + shape)
  params = model.init(jax.random.key(0), x)
  mean, logvar = model.apply(params, x, method='encode')
  assert mean.shape == logvar.shape == (2, 5)
  out = model.apply(params, jnp.zeros((3, 5)), method='decode')
  assert out.shape == (3,) + shape[:2] + (2 * shape[2],)


def test_conditional_model_uses_labels():
  model = vae.VAE(image_shape=(28, 28, 1), latent_dim=4, widths=(8, 16),
                  num_classes=10)
  x = jnp.zeros((2, 28, 28, 1))
  params = model.init(jax.random.key(0), x, jnp.zeros(2, jnp.int32))
  z = jnp.zeros((2, 4))
  a = model.apply(params, z, jnp.array([0, 0]), method='decode')
  b = model.apply(params, z, jnp.array([0, 7]), method='decode')
  np.testing.assert_allclose(a[0], b[0])
  assert not np.allclose(a[1], b[1])


def test_bad_sizes_and_likelihood():
  with pytest.raises(ValueError, match='not divisible by 2'):
    vae.VAE(image_shape=(30, 30, 1), widths=(8, 16, 32)).init(
        jax.random.key(0), jnp.zeros((1, 30, 30, 1)))
  with pytest.raises(ValueError, match="likelihood 'poisson' unknown"):
    vae.VAE(image_shape=(28, 28, 1), likelihood='poisson').init(
        jax.random.key(0), jnp.zeros((1, 28, 28, 1)))


def test_autoregressive_decoder_is_causal():
  model = vae.VAE(image_shape=(8, 8, 1), latent_dim=3, widths=(4, 8),
                  ar_channels=4, ar_layers=2)
  x = jnp.zeros((1, 8, 8, 1))
  params = model.init(jax.random.key(0), x)
  z = jnp.ones((1, 3))
  order = np.arange(64).reshape(8, 8)
  for r, c in [(0, 0), (2, 5), (7, 7)]:
    jac = np.asarray(jax.jacobian(lambda x: model.apply(
        params, z, None, x, method='decode')[0, r, c, 0])(x))[0, ..., 0]
    assert np.all(jac[order >= order[r, c]] == 0), (r, c)
  with pytest.raises(ValueError, match='needs the image x'):
    model.apply(params, z, method='decode')
  with pytest.raises(ValueError, match='1-channel'):
    vae.VAE(image_shape=(8, 8, 3), widths=(4, 8), ar_channels=4).init(
        jax.random.key(0), jnp.zeros((1, 8, 8, 3)))


def test_activation_is_configurable_and_identity_makes_the_encoder_affine():
  kw = dict(image_shape=(8, 8, 1), latent_dim=3, widths=(4, 8),
            blocks_per_level=1, ar_channels=4)
  x = jax.random.uniform(jax.random.key(1), (2, 8, 8, 1))
  params = vae.VAE(**kw).init(jax.random.key(0), x)
  # Same parameters for every activation: only the nonlinearity changes.
  outs = {act: vae.VAE(**kw, act=act).apply(params, x)
          for act in ('silu', 'relu', 'identity')}
  assert not np.allclose(outs['silu'], outs['relu'])
  assert not np.allclose(outs['silu'], outs['identity'])
  # Without activations the encoder is affine: f(a) + f(b) = f(a + b) + f(0).
  enc = lambda v: vae.VAE(**kw, act='identity').apply(
      params, v, method='encode')[0]
  a, b = x[:1], x[1:]
  np.testing.assert_allclose(enc(a) + enc(b), enc(a + b) + enc(0 * a),
                             rtol=1e-5, atol=1e-5)
  with pytest.raises(ValueError, match="activation 'swish2' unknown"):
    vae.VAE(**kw, act='swish2').init(jax.random.key(0), x)


def test_from_config_passes_the_activation():
  from gensynth.configs import vae_mnist  # pylint: disable=g-import-not-at-top
  c = vae_mnist.get_config()
  assert c.model.act == 'silu'
  c.model.act = 'identity'
  assert vae.from_config(c.model, (28, 28, 1), 10).act == 'identity'
