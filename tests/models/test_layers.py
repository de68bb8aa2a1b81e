import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from gensynth.models import layers


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


@pytest.mark.parametrize('k,s,p', [(4, 2, 1), (3, 2, 1), (3, 1, 1), (5, 3, 2)])
def test_conv_transpose_matches_definition(k, s, p):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(2, 5, 4, 3)).astype(np.float32)
  layer = layers.ConvTranspose(6, k, s, p, use_bias=False)
  params = layer.init(jax.random.key(0), x)
  y = jax.jit(layer.apply)(params, x)
  w = np.asarray(params['params']['kernel'])
  for n in range(2):
    np.testing.assert_allclose(y[n], _reference_conv_transpose(x[n], w, s, p),
                               rtol=1e-4, atol=1e-4)


def test_conv_transpose_gradients_match_autodiff():
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.normal(size=(3, 7, 7, 8)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(4, 4, 5, 8)) * 0.1, jnp.float32)
  pad = ((1, 1), (1, 1))
  conv = lambda z, w_: lax.conv_general_dilated(
      z, w_, (2, 2), pad, dimension_numbers=('NHWC', 'HWIO', 'NHWC'))

  def stock(x, w):  # plain autodiff through the conv's VJP
    _, vjp = jax.vjp(lambda z: conv(z, w), jnp.zeros((3, 14, 14, 5)))
    return vjp(x)[0]

  fast = lambda x, w: layers.conv_transpose_adjoint(x, w, (2, 2), pad, (14, 14))
  target = jnp.asarray(rng.normal(size=(3, 14, 14, 5)), jnp.float32)
  loss = lambda f: lambda x, w: jnp.sum((f(x, w) - target)**2)
  g_fast = jax.jit(jax.grad(loss(fast), (0, 1)))(x, w)
  g_ref = jax.grad(loss(stock), (0, 1))(x, w)
  for a, b in zip(g_fast, g_ref):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-3)


def test_conv_transpose_rejects_non_4d():
  layer = layers.ConvTranspose(2)
  with pytest.raises(ValueError, match=r'\[N, H, W, C\]'):
    layer.init(jax.random.key(0), jnp.zeros((4, 4, 3)))


@pytest.mark.parametrize('center', [False, True])
def test_masked_conv_is_causal(center):
  layer = layers.MaskedConv(2, 5, include_center=center)
  x = jnp.zeros((1, 6, 6, 1))
  params = layer.init(jax.random.key(0), x)
  # d out[3, 2] / d x: nonzero only at raster positions before (3, 2).
  jac = jax.jacobian(lambda x: layer.apply(params, x)[0, 3, 2, 0])(x)[0, ..., 0]
  order = np.arange(36).reshape(6, 6)
  here = order[3, 2]
  assert np.all(np.asarray(jac)[order > here] == 0)
  assert (np.asarray(jac)[3, 2] != 0) == center
  assert np.any(np.asarray(jac)[order < here] != 0)
