import flax.linen as nn
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


@pytest.mark.parametrize('cin,cout', [(8, 5), (64, 1)])  # 1: to images
def test_conv_transpose_gradients_match_autodiff(cin, cout):
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.normal(size=(3, 7, 7, cin)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(4, 4, cout, cin)) * 0.1, jnp.float32)
  pad = ((1, 1), (1, 1))
  conv = lambda z, w_: lax.conv_general_dilated(
      z, w_, (2, 2), pad, dimension_numbers=('NHWC', 'HWIO', 'NHWC'))

  def stock(x, w):  # plain autodiff through the conv's VJP
    _, vjp = jax.vjp(lambda z: conv(z, w), jnp.zeros((3, 14, 14, cout)))
    return vjp(x)[0]

  fast = lambda x, w: layers.conv_transpose_adjoint(x, w, (2, 2), pad, (14, 14))
  target = jnp.asarray(rng.normal(size=(3, 14, 14, cout)), jnp.float32)
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


@pytest.mark.parametrize('k,ci,co', [((2, 2), 8, 4), ((3, 2), 5, 1),
                                      ((1, 3), 4, 3)])
def test_valid_conv_by_taps_equals_lax(k, ci, co):
  rng = np.random.default_rng(9)
  with jax.enable_x64():
    x = jnp.asarray(rng.normal(size=(2, 7, 6, ci)))
    w = jnp.asarray(rng.normal(size=k + (ci, co)))
    np.testing.assert_allclose(layers._valid_conv_by_taps(x, w),
                               _lax_conv(x, w, (1, 1), 'VALID'),
                               rtol=1e-12, atol=1e-12)


def _lax_conv(x, w, s, pad):
  return lax.conv_general_dilated(x, w, s, pad,
                                  dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


@pytest.mark.parametrize('hw,k,s,pad', [
    ((7, 9), 4, (2, 2), ((1, 1), (1, 1))),   # odd sizes: rows are dropped
    ((8, 8), 3, (2, 2), ((1, 0), (0, 2))),   # asymmetric padding
    ((6, 5), 5, (3, 2), ((2, 2), (0, 1))),   # kernel > stride, mixed strides
    ((5, 5), 1, (2, 2), ((0, 0), (0, 0))),   # kernel < stride
    ((4, 4), 4, (2, 2), ((3, 3), (3, 3))),   # padding >= stride
])
@pytest.mark.parametrize('cin,cout', [
    (3, 4),
    (1, 20),  # few output channels: the matmul + shift-add path
    (2, 40)])
def test_conv_adjoint_equals_autodiff_transpose(hw, k, s, pad, cin, cout):
  rng = np.random.default_rng(2)
  x = rng.normal(size=(2, *hw, cin))
  w = rng.normal(size=(k, k, cin, cout))
  with jax.enable_x64():
    x, w = jnp.asarray(x), jnp.asarray(w)
    y, vjp = jax.vjp(lambda z: _lax_conv(z, w, s, pad), x)
    g = jnp.asarray(rng.normal(size=y.shape))
    got = layers.conv_adjoint(g, w, s, pad, hw)
    np.testing.assert_allclose(got, vjp(g)[0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize('cin,cout,k,s,pad', [
    (3, 5, 4, (2, 2), ((1, 1), (1, 1))),
    (1, 5, 4, (2, 2), ((1, 1), (1, 1))),  # 1 channel: the tap-sum forward
    (1, 5, 3, (2, 3), ((0, 2), (1, 0))),
    (1, 5, 5, (3, 2), ((2, 1), (2, 2))),
    # and an input gradient by matmul + shift-add (the GAN D's first layer)
    (1, 16, 4, (2, 2), ((1, 1), (1, 1)))])
def test_strided_conv_gradients_and_second_order_match_lax(cin, cout, k, s,
                                                           pad):
  """Value, first-order grads and an R1-style grad-of-grad (d/dw of |dD/dx|^2)
  through the custom-VJP conv equal plain autodiff through lax."""
  rng = np.random.default_rng(3)
  with jax.enable_x64():
    x = jnp.asarray(rng.normal(size=(2, 9, 8, cin)))
    w = jnp.asarray(rng.normal(size=(k, k, cin, cout)))

    def d(conv):
      return lambda x, w: jnp.sum(jnp.tanh(conv(x, w, s, pad)) ** 2)

    ours, ref = d(layers.strided_conv), d(_lax_conv)
    np.testing.assert_allclose(ours(x, w), ref(x, w), rtol=1e-12)
    for a, b in zip(jax.grad(ours, (0, 1))(x, w), jax.grad(ref, (0, 1))(x, w)):
      np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    r1 = lambda f: lambda w: jnp.sum(jax.grad(f)(x, w) ** 2)
    np.testing.assert_allclose(jax.grad(r1(ours))(w), jax.grad(r1(ref))(w),
                               rtol=1e-10, atol=1e-12)


def test_conv_is_flax_conv_with_same_parameters():
  x = jnp.asarray(np.random.default_rng(4).normal(size=(2, 11, 10, 3)),
                  jnp.float32)
  kw = dict(features=6, kernel_size=(4, 4), strides=(2, 2), padding='SAME')
  ours, stock = layers.Conv(**kw), nn.Conv(**kw)
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


@pytest.mark.parametrize('k,center,cin', [(3, True, 3), (5, False, 3),
                                          (7, True, 3), (5, False, 1)])
def test_masked_conv_equals_full_masked_kernel(k, center, cin):
  """The conv over the top k//2+1 kernel rows equals the full k x k masked
  conv ('SAME'), values and kernel gradients (cin=1: the tap-sum path)."""
  rng = np.random.default_rng(5)
  x = jnp.asarray(rng.normal(size=(2, 9, 7, cin)), jnp.float32)
  layer = layers.MaskedConv(4, k, include_center=center)
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


@pytest.mark.parametrize('k,pad', [((3, 3), ((1, 1), (1, 1))),
                                   ((3, 5), ((2, 0), (2, 2))),
                                   ((2, 3), ((0, 1), (2, 0))),
                                   ((1, 1), ((0, 0), (0, 0)))])
def test_single_channel_conv_equals_lax(k, pad):
  """The tap-sum forward of 1-channel convs, its gradients and a grad of a
  gradient equal lax's convolution in float64."""
  rng = np.random.default_rng(6)
  with jax.enable_x64():
    x = jnp.asarray(rng.normal(size=(3, 9, 7, 1)))
    w = jnp.asarray(rng.normal(size=k + (1, 4)))
    ref = lambda x, w: lax.conv_general_dilated(
        x, w, (1, 1), pad, dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    ours = lambda x, w: layers.conv_general_dilated(
        x, w, (1, 1), pad, dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    np.testing.assert_allclose(ours(x, w), ref(x, w), rtol=1e-12, atol=1e-12)
    loss = lambda f: lambda x, w: jnp.sum(jnp.tanh(f(x, w)) ** 2)
    for a, b in zip(jax.grad(loss(ours), (0, 1))(x, w),
                    jax.grad(loss(ref), (0, 1))(x, w)):
      np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    r1 = lambda f: lambda w: jnp.sum(jax.grad(loss(f))(x, w) ** 2)
    np.testing.assert_allclose(jax.grad(r1(ours))(w), jax.grad(r1(ref))(w),
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize('strides', [(1, 1), (2, 2)])
def test_single_channel_conv_is_used_for_one_input_channel(strides):
  """`layers.Conv` on a 1-channel input takes the tap-sum path (no
  convolution in the forward HLO) and matches `flax.linen.Conv`, strided
  (the GAN discriminator's first layer) or not."""
  x = jnp.asarray(np.random.default_rng(7).normal(size=(2, 8, 8, 1)),
                  jnp.float32)
  kw = dict(features=5, kernel_size=(3, 3), strides=strides)
  ours, stock = layers.Conv(**kw), nn.Conv(**kw)
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
  """`layers.Conv` with few output channels (stride 1) runs without a
  convolution op and matches `flax.linen.Conv`, values and gradients."""
  x = jnp.asarray(np.random.default_rng(10).normal(size=(2, 9, 8, cin)),
                  jnp.float32)
  kw = dict(features=cout, kernel_size=k, padding=padding)
  ours, stock = layers.Conv(**kw), nn.Conv(**kw)
  params = stock.init(jax.random.key(0), x)
  np.testing.assert_allclose(ours.apply(params, x), stock.apply(params, x),
                             rtol=1e-5, atol=1e-5)
  assert 'convolution' not in jax.jit(ours.apply).lower(params, x).as_text()
  loss = lambda m: lambda p, x: jnp.sum(jnp.sin(m.apply(p, x)))
  for a, b in zip(jax.tree.leaves(jax.grad(loss(ours), (0, 1))(params, x)),
                  jax.tree.leaves(jax.grad(loss(stock), (0, 1))(params, x))):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_silu_matches_jax_silu_in_every_autodiff_mode():
  """`layers.silu` equals jax.nn.silu: values, reverse-mode gradient, a
  second derivative and forward mode (jvp), float64, including large |x|."""
  with jax.enable_x64():
    x = jnp.asarray(np.concatenate([
        np.random.default_rng(8).normal(size=50) * 3,
        [-40.0, -5.0, 0.0, 5.0, 40.0]]))
    np.testing.assert_allclose(layers.silu(x), jax.nn.silu(x), rtol=1e-14,
                               atol=1e-300)
    pairs = [
        (jax.grad(lambda v: jnp.sum(jnp.sin(layers.silu(v)))),
         jax.grad(lambda v: jnp.sum(jnp.sin(jax.nn.silu(v))))),
        (jax.grad(lambda v: jnp.sum(jax.grad(
            lambda u: jnp.sum(layers.silu(u)))(v) ** 2)),
         jax.grad(lambda v: jnp.sum(jax.grad(
             lambda u: jnp.sum(jax.nn.silu(u)))(v) ** 2))),
        (lambda v: jax.jvp(layers.silu, (v,), (jnp.cos(v),))[1],
         lambda v: jax.jvp(jax.nn.silu, (v,), (jnp.cos(v),))[1]),
    ]
    for ours, ref in pairs:
      np.testing.assert_allclose(ours(x), ref(x), rtol=1e-12, atol=1e-14)


def test_activation_names():
  assert layers.activation('silu') is layers.silu
  assert layers.activation('relu') is nn.relu
  x = jnp.arange(3.0)
  assert layers.activation('identity')(x) is x
  with pytest.raises(ValueError, match='activation .*nope'):
    layers.activation('nope')
