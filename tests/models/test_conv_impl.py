"""conv_impl='xla' and 'fast' compute the same models: one parameter tree,
equal outputs and equal gradients, for every model gensynth trains."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gensynth.models import classifier
from gensynth.models import gan
from gensynth.models import vae


def _cases():
  x28 = np.random.default_rng(0).uniform(-1, 1, (4, 28, 28, 1))
  x32 = np.random.default_rng(1).uniform(-1, 1, (4, 32, 32, 3))
  y = np.array([0, 1, 2, 1], np.int32)
  z = np.random.default_rng(2).normal(size=(4, 8))
  return {
      # The MNIST NLL model: strided convs, transposed convs, a PixelCNN head.
      'vae_ar': (vae.VAE(image_shape=(28, 28, 1), latent_dim=4,
                         widths=(8, 16), blocks_per_level=1, ar_channels=4,
                         num_classes=3), (x28, y)),
      # The shapes model: RGB, a 3x3 conv head to logistic parameters.
      'vae_rgb': (vae.VAE(image_shape=(32, 32, 3), latent_dim=4,
                          widths=(8, 16, 16), likelihood='logistic',
                          blocks_per_level=0), (x32,)),
      'generator': (gan.Generator(28, 1, (16, 8), num_classes=3), (z, y)),
      'generator_nearest': (gan.Generator(28, 1, (16, 8), num_classes=3,
                                          upsample='nearest'), (z, y)),
      'discriminator': (gan.Discriminator((8, 16), num_classes=3,
                                          mbstd_group=2), (x28, y)),
      'classifier': (classifier.Classifier(10, (4, 8), 16), (x28,)),
  }


@pytest.mark.parametrize('name', sorted(_cases()))
def test_xla_and_fast_give_equal_values_and_gradients(name):
  model, args = _cases()[name]
  args = tuple(jnp.asarray(a, jnp.float32) if a.dtype.kind == 'f'
               else jnp.asarray(a) for a in args)
  xla = dataclasses.replace(model, conv_impl='xla')
  fast = dataclasses.replace(model, conv_impl='fast')
  params = xla.init(jax.random.key(0), *args)
  assert (jax.tree.structure(fast.init(jax.random.key(0), *args))
          == jax.tree.structure(params))

  def loss(m):
    return lambda p, a0: jnp.sum(jnp.sin(m.apply(p, a0, *args[1:])))

  np.testing.assert_allclose(jax.jit(fast.apply)(params, *args),
                             jax.jit(xla.apply)(params, *args),
                             rtol=1e-4, atol=1e-4)
  g_fast = jax.jit(jax.grad(loss(fast), (0, 1)))(params, args[0])
  g_xla = jax.jit(jax.grad(loss(xla), (0, 1)))(params, args[0])
  for (path, a), b in zip(jax.tree_util.tree_flatten_with_path(g_fast)[0],
                          jax.tree.leaves(g_xla)):
    scale = float(jnp.max(jnp.abs(b))) + 1e-6
    np.testing.assert_allclose(a / scale, b / scale, atol=2e-4,
                               err_msg=jax.tree_util.keystr(path))
