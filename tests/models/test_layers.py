"""gensynth.models.layers: each layer under both conv implementations."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from gensynth.models import fast_conv
from gensynth.models import layers

IMPLS = ('xla', 'fast')


def _reference_conv_transpose(x, w, s, p):
  """Scatter-add definition (PyTorch ConvTranspose2d), NumPy, one image."""
  h, wd, _ = x.shape
  k = w.shape[0]
  out = np.zeros(((h - 1) * s - 2 * p + k, (wd - 1) * s - 2 * p + k,
                  w.shape[2]))
  for i in range(h):
    for j in range(wd):
      for a in range(k):
        for b in range(k):
          r, c = i * s + a - p, j * s + b - p
          if 0 <= r < out.shape[0] and 0 <= c < out.shape[1]:
            out[r, c] += w[a, b] @ x[i, j]
  return out


@pytest.mark.parametrize('impl', IMPLS)
@pytest.mark.parametrize('k,s,p', [(4, 2, 1), (3, 2, 1), (3, 1, 1), (5, 3, 2)])
def test_conv_transpose_matches_definition(k, s, p, impl):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(2, 5, 4, 3)).astype(np.float32)
  layer = layers.ConvTranspose(6, k, s, p, use_bias=False, conv_impl=impl)
  params = layer.init(jax.random.key(0), x)
  y = jax.jit(layer.apply)(params, x)
  w = np.asarray(params['params']['kernel'])
  for n in range(2):
    np.testing.assert_allclose(y[n], _reference_conv_transpose(x[n], w, s, p),
                               rtol=1e-4, atol=1e-4)


def test_conv_transpose_rejects_non_4d():
  layer = layers.ConvTranspose(2)
  with pytest.raises(ValueError, match=r'\[N, H, W, C\]'):
    layer.init(jax.random.key(0), jnp.zeros((4, 4, 3)))


@pytest.mark.parametrize('impl', IMPLS)
@pytest.mark.parametrize('center', [False, True])
def test_masked_conv_is_causal(center, impl):
  layer = layers.MaskedConv(2, 5, include_center=center, conv_impl=impl)
  x = jnp.zeros((1, 6, 6, 1))
  params = layer.init(jax.random.key(0), x)
  # d out[3, 2] / d x: nonzero only at raster positions before (3, 2).
  jac = jax.jacobian(lambda x: layer.apply(params, x)[0, 3, 2, 0])(x)[0, ..., 0]
  order = np.arange(36).reshape(6, 6)
  here = order[3, 2]
  assert np.all(np.asarray(jac)[order > here] == 0)
  assert (np.asarray(jac)[3, 2] != 0) == center
  assert np.any(np.asarray(jac)[order < here] != 0)


@pytest.mark.parametrize('impl', IMPLS)
def test_conv_is_flax_conv_with_same_parameters(impl):
  x = jnp.asarray(np.random.default_rng(4).normal(size=(2, 11, 10, 3)),
                  jnp.float32)
  kw = dict(features=6, kernel_size=(4, 4), strides=(2, 2), padding='SAME')
  ours, stock = layers.Conv(**kw, conv_impl=impl), nn.Conv(**kw)
  params = stock.init(jax.random.key(0), x)
  assert (jax.tree.structure(ours.init(jax.random.key(0), x))
          == jax.tree.structure(params))
  np.testing.assert_allclose(ours.apply(params, x), stock.apply(params, x),
                             rtol=1e-5, atol=1e-5)
  loss = lambda m: lambda p: jnp.sum(jnp.sin(m.apply(p, x)))
  for a, b in zip(jax.tree.leaves(jax.grad(loss(ours))(params)),
                  jax.tree.leaves(jax.grad(loss(stock))(params))):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
  # Input gradient too (the part the custom VJP replaces).
  gx = lambda m: jax.grad(lambda z: jnp.sum(jnp.sin(m.apply(params, z))))(x)
  np.testing.assert_allclose(gx(ours), gx(stock), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('impl', IMPLS)
@pytest.mark.parametrize('k,center,cin', [(3, True, 3), (5, False, 3),
                                          (7, True, 3), (5, False, 1)])
def test_masked_conv_equals_full_masked_kernel(k, center, cin, impl):
  """The conv over the top k//2+1 kernel rows equals the full k x k masked
  conv ('SAME'), values and kernel gradients (cin=1: the tap-sum path)."""
  rng = np.random.default_rng(5)
  x = jnp.asarray(rng.normal(size=(2, 9, 7, cin)), jnp.float32)
  layer = layers.MaskedConv(4, k, include_center=center, conv_impl=impl)
  params = layer.init(jax.random.key(0), x)
  mask = layers.causal_mask(k, include_center=center)[:, :, None, None]

  def full(p):
    y = lax.conv_general_dilated(x, p['params']['kernel'] * mask, (1, 1),
                                 'SAME', dimension_numbers=('NHWC', 'HWIO',
                                                            'NHWC'))
    return y + p['params']['bias']

  np.testing.assert_allclose(layer.apply(params, x), full(params), rtol=1e-5,
                             atol=1e-5)
  loss = lambda f: lambda p: jnp.sum(jnp.sin(f(p)))
  g_ours = jax.grad(loss(lambda p: layer.apply(p, x)))(params)
  g_full = jax.grad(loss(full))(params)
  for a, b in zip(jax.tree.leaves(g_ours), jax.tree.leaves(g_full)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('strides', [(1, 1), (2, 2)])
def test_single_channel_conv_is_used_for_one_input_channel(strides):
  """`layers.Conv` ('fast') on a 1-channel input takes the tap-sum path (no
  convolution in the forward HLO) and matches `flax.linen.Conv`, strided
  (the GAN discriminator's first layer) or not."""
  x = jnp.asarray(np.random.default_rng(7).normal(size=(2, 8, 8, 1)),
                  jnp.float32)
  kw = dict(features=5, kernel_size=(3, 3), strides=strides)
  ours, stock = layers.Conv(**kw, conv_impl='fast'), nn.Conv(**kw)
  params = stock.init(jax.random.key(0), x)
  np.testing.assert_allclose(ours.apply(params, x), stock.apply(params, x),
                             rtol=1e-5, atol=1e-5)
  hlo = jax.jit(ours.apply).lower(params, x).as_text()
  assert 'convolution' not in hlo
  assert 'convolution' in jax.jit(stock.apply).lower(params, x).as_text()


@pytest.mark.parametrize('k,cin,cout,padding', [
    ((1, 1), 16, 1, 'VALID'), ((3, 3), 32, 3, 'SAME'),
    ((2, 3), 24, 4, ((1, 0), (2, 1)))])
def test_few_output_channel_conv_is_a_matmul_and_equals_flax_conv(
    k, cin, cout, padding):
  """`layers.Conv` ('fast') with few output channels (stride 1) runs without a
  convolution op and matches `flax.linen.Conv`, values and gradients."""
  x = jnp.asarray(np.random.default_rng(10).normal(size=(2, 9, 8, cin)),
                  jnp.float32)
  kw = dict(features=cout, kernel_size=k, padding=padding)
  ours, stock = layers.Conv(**kw, conv_impl='fast'), nn.Conv(**kw)
  params = stock.init(jax.random.key(0), x)
  np.testing.assert_allclose(ours.apply(params, x), stock.apply(params, x),
                             rtol=1e-5, atol=1e-5)
  assert 'convolution' not in jax.jit(ours.apply).lower(params, x).as_text()
  loss = lambda m: lambda p, x: jnp.sum(jnp.sin(m.apply(p, x)))
  for a, b in zip(jax.tree.leaves(jax.grad(loss(ours), (0, 1))(params, x)),
                  jax.tree.leaves(jax.grad(loss(stock), (0, 1))(params, x))):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_activation_names():
  assert layers.activation('silu', 'fast') is fast_conv.silu
  assert layers.activation('silu', 'xla') is nn.silu
  assert layers.activation('relu') is nn.relu
  x = jnp.arange(3.0)
  assert layers.activation('identity')(x) is x
  with pytest.raises(ValueError, match='activation .*nope'):
    layers.activation('nope')


def test_resolve_impl_picks_by_backend_and_rejects_unknown_names():
  assert layers.resolve_impl('auto', 'cpu') == 'fast'
  assert layers.resolve_impl('auto', 'gpu') == 'fast'
  assert layers.resolve_impl('auto', 'tpu') == 'xla'
  assert layers.resolve_impl('xla', 'cpu') == 'xla'
  with pytest.raises(ValueError, match="conv_impl='lax' unknown.*auto"):
    layers.resolve_impl('lax')


def test_xla_impl_runs_no_custom_lowering():
  """'xla' lowers to plain convolutions (no tap sums, no sub-pixel reshuffle):
  the forward HLO of a 1-channel strided conv holds a convolution op."""
  x = jnp.ones((2, 8, 8, 1))
  m = layers.Conv(4, (3, 3), strides=(2, 2), conv_impl='xla')
  params = m.init(jax.random.key(0), x)
  assert 'convolution' in jax.jit(m.apply).lower(params, x).as_text()
