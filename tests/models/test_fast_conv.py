"""gensynth.models.fast_conv: each XLA:CPU lowering equals lax's own."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from gensynth.models import fast_conv


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

  fast = lambda x, w: fast_conv.conv_transpose_adjoint(x, w, (2, 2), pad, (14, 14))
  target = jnp.asarray(rng.normal(size=(3, 14, 14, cout)), jnp.float32)
  loss = lambda f: lambda x, w: jnp.sum((f(x, w) - target)**2)
  g_fast = jax.jit(jax.grad(loss(fast), (0, 1)))(x, w)
  g_ref = jax.grad(loss(stock), (0, 1))(x, w)
  for a, b in zip(g_fast, g_ref):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize('k,ci,co', [((2, 2), 8, 4), ((3, 2), 5, 1),
                                      ((1, 3), 4, 3)])
def test_valid_conv_by_taps_equals_lax(k, ci, co):
  rng = np.random.default_rng(9)
  with jax.enable_x64():
    x = jnp.asarray(rng.normal(size=(2, 7, 6, ci)))
    w = jnp.asarray(rng.normal(size=k + (ci, co)))
    np.testing.assert_allclose(fast_conv.valid_conv_by_taps(x, w),
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
    got = fast_conv.conv_adjoint(g, w, s, pad, hw)
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

    ours, ref = d(fast_conv.strided_conv), d(_lax_conv)
    np.testing.assert_allclose(ours(x, w), ref(x, w), rtol=1e-12)
    for a, b in zip(jax.grad(ours, (0, 1))(x, w), jax.grad(ref, (0, 1))(x, w)):
      np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    r1 = lambda f: lambda w: jnp.sum(jax.grad(f)(x, w) ** 2)
    np.testing.assert_allclose(jax.grad(r1(ours))(w), jax.grad(r1(ref))(w),
                               rtol=1e-10, atol=1e-12)


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
    ours = lambda x, w: fast_conv.conv_general_dilated(
        x, w, (1, 1), pad, dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    np.testing.assert_allclose(ours(x, w), ref(x, w), rtol=1e-12, atol=1e-12)
    loss = lambda f: lambda x, w: jnp.sum(jnp.tanh(f(x, w)) ** 2)
    for a, b in zip(jax.grad(loss(ours), (0, 1))(x, w),
                    jax.grad(loss(ref), (0, 1))(x, w)):
      np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    r1 = lambda f: lambda w: jnp.sum(jax.grad(loss(f))(x, w) ** 2)
    np.testing.assert_allclose(jax.grad(r1(ours))(w), jax.grad(r1(ref))(w),
                               rtol=1e-10, atol=1e-12)


def test_silu_matches_jax_silu_in_every_autodiff_mode():
  """`fast_conv.silu` equals jax.nn.silu: values, reverse-mode gradient, a
  second derivative and forward mode (jvp), float64, including large |x|."""
  with jax.enable_x64():
    x = jnp.asarray(np.concatenate([
        np.random.default_rng(8).normal(size=50) * 3,
        [-40.0, -5.0, 0.0, 5.0, 40.0]]))
    np.testing.assert_allclose(fast_conv.silu(x), jax.nn.silu(x), rtol=1e-14,
                               atol=1e-300)
    pairs = [
        (jax.grad(lambda v: jnp.sum(jnp.sin(fast_conv.silu(v)))),
         jax.grad(lambda v: jnp.sum(jnp.sin(jax.nn.silu(v))))),
        (jax.grad(lambda v: jnp.sum(jax.grad(
            lambda u: jnp.sum(fast_conv.silu(u)))(v) ** 2)),
         jax.grad(lambda v: jnp.sum(jax.grad(
             lambda u: jnp.sum(jax.nn.silu(u)))(v) ** 2))),
        (lambda v: jax.jvp(fast_conv.silu, (v,), (jnp.cos(v),))[1],
         lambda v: jax.jvp(jax.nn.silu, (v,), (jnp.cos(v),))[1]),
    ]
    for ours, ref in pairs:
      np.testing.assert_allclose(ours(x), ref(x), rtol=1e-12, atol=1e-14)
