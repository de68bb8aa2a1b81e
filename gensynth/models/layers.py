"""Layers shared by gensynth's encoders, discriminators, generators, decoders.

Every convolution in gensynth's models goes through `Conv`, `ConvTranspose`
or `MaskedConv` here, each with a `conv_impl` field:

* 'xla': plain `flax.linen.Conv` / `lax` convolutions and autodiff;
* 'fast': the equal computations of `gensynth.models.fast_conv`, rewritten
  for XLA:CPU (its docstring names the benchmark behind each);
* 'auto' (the configs' default): 'fast' on the backends where it was
  measured faster (CPU and GPU, BUILD_NOTES.md "Train steps on a GPU"),
  'xla' elsewhere.

Both implementations share one parameter tree, so a checkpoint trained with
either restores and runs under the other.
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from gensynth import errors
from gensynth.models import fast_conv

CONV_IMPLS = ('auto', 'xla', 'fast')
# Backends on which `--bench=layer_impl` measured 'fast' ahead of 'xla'.
_FAST_BACKENDS = ('cpu', 'gpu', 'cuda', 'rocm')


def resolve_impl(conv_impl, backend=None):
  """'xla' or 'fast' for `conv_impl`; 'auto' picks by `backend` (default:
  JAX's default backend)."""
  if conv_impl not in CONV_IMPLS:
    raise errors.ConfigError(
        f'conv_impl={conv_impl!r} unknown; expected one of '
        f'{CONV_IMPLS}.')
  if conv_impl != 'auto':
    return conv_impl
  backend = backend or jax.default_backend()
  return 'fast' if backend in _FAST_BACKENDS else 'xla'


def conv_fn(conv_impl):
  """The `lax.conv_general_dilated`-compatible function for `conv_impl`."""
  if resolve_impl(conv_impl) == 'fast':
    return fast_conv.conv_general_dilated
  return lax.conv_general_dilated


def Conv(*args, conv_impl='auto', **kwargs):  # pylint: disable=invalid-name
  """`flax.linen.Conv(*args, **kwargs)` running `conv_impl`'s convolution.

  Returns a plain `nn.Conv` (auto-named `Conv_N`, the same parameters for
  every implementation)."""
  return nn.Conv(*args, conv_general_dilated=conv_fn(conv_impl),
                 **kwargs)


def conv_transpose(x, kernel, strides, padding, out_hw, *, conv_impl='auto'):
  """Adjoint of the strided conv `z -> conv(z, kernel, strides, padding)`
  (z of spatial size `out_hw`) applied to x [N, h, w, Cin].

  `kernel` is that conv's HWIO kernel [kh, kw, Cout, Cin]; the result is
  [N, H, W, Cout]. 'xla' is lax's own transpose of the conv (what
  `lax.conv_transpose` runs), 'fast' the sub-pixel `fast_conv` form.
  """
  if resolve_impl(conv_impl) == 'fast':
    return fast_conv.conv_transpose_adjoint(x, kernel, strides, padding,
                                            out_hw)
  z = jax.ShapeDtypeStruct((x.shape[0],) + tuple(out_hw) + (kernel.shape[2],),
                           x.dtype)
  transpose = jax.linear_transpose(
      lambda z_: fast_conv.lax_conv(z_, kernel, strides, padding), z)
  return transpose(x)[0]


class ConvTranspose(nn.Module):
  """Transposed convolution = adjoint of a strided conv (PyTorch semantics).

  Output size is `(in - 1) * stride - 2 * padding + kernel`, as for
  `torch.nn.ConvTranspose2d(kernel_size, stride, padding)`; kernel 4, stride 2,
  padding 1 doubles the size.
  """
  features: int
  kernel_size: int = 4
  strides: int = 2
  padding: int = 1
  use_bias: bool = True
  kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
  conv_impl: str = 'auto'

  @nn.compact
  def __call__(self, x):
    if x.ndim != 4:
      raise errors.ConfigError(
          f'ConvTranspose expects [N, H, W, C] input, got shape '
          f'{x.shape}.')
    k, s, p = self.kernel_size, self.strides, self.padding
    # Kernel stored as HWIO of the strided conv: I = our output features.
    kernel = self.param('kernel', self.kernel_init,
                        (k, k, self.features, x.shape[-1]))
    out_hw = tuple((n - 1) * s - 2 * p + k for n in x.shape[1:3])
    y = conv_transpose(x, kernel.astype(x.dtype), (s, s), ((p, p), (p, p)),
                       out_hw, conv_impl=self.conv_impl)
    if self.use_bias:
      y = y + self.param('bias', nn.initializers.zeros, (self.features,))
    return y


def identity(x):
  """No activation (for ablations: what a network's activations cost)."""
  return x


def activation(name, conv_impl='auto'):
  """The activation called `name` in flax.linen; `identity` is none. Under
  the 'fast' implementation silu is `fast_conv.silu` (equal values)."""
  if name == 'silu':
    return fast_conv.silu if resolve_impl(conv_impl) == 'fast' else nn.silu
  if name == 'identity':
    return identity
  act = getattr(nn, name, None)
  if act is None or not callable(act):
    raise errors.ConfigError(
        f'activation {name!r} unknown; expected a flax.linen '
        'activation name such as silu, relu, gelu, or identity.')
  return act


class ResBlock(nn.Module):
  """Pre-activation residual block at constant resolution."""
  features: int
  act: str = 'silu'
  conv_impl: str = 'auto'

  @nn.compact
  def __call__(self, x):
    act = activation(self.act, self.conv_impl)
    conv = functools.partial(Conv, conv_impl=self.conv_impl)
    h = conv(self.features, (3, 3))(act(x))
    h = conv(self.features, (3, 3))(act(h))
    if x.shape[-1] != self.features:
      x = conv(self.features, (1, 1))(x)
    return x + h


def causal_mask(kernel_size, *, include_center):
  """[k, k] raster-order mask: rows above, and left of the centre in its row."""
  k = kernel_size
  mask = jnp.zeros((k, k)).at[:k // 2].set(1.0).at[k // 2, :k // 2].set(1.0)
  return mask.at[k // 2, k // 2].set(1.0) if include_center else mask


class MaskedConv(nn.Module):
  """PixelCNN masked convolution for single-channel images.

  Mask 'A' (include_center=False) hides the current pixel: use it on the image.
  Mask 'B' sees the current position of features that are already causal.
  """
  features: int
  kernel_size: int
  include_center: bool
  conv_impl: str = 'auto'

  @nn.compact
  def __call__(self, x):
    k = self.kernel_size
    kernel = self.param('kernel', nn.initializers.lecun_normal(),
                        (k, k, x.shape[-1], self.features))
    mask = causal_mask(k, include_center=self.include_center)[:, :, None, None]
    # The rows below the centre are masked out: convolve with the top k//2+1
    # rows only (padding above, none below): 6 taps instead of 9 for k=3.
    c = k // 2
    y = conv_fn(self.conv_impl)(
        x, (kernel * mask)[:c + 1], (1, 1), ((c, 0), (c, c)),
        dimension_numbers=fast_conv.DIMENSION_NUMBERS)
    return y + self.param('bias', nn.initializers.zeros, (self.features,))
