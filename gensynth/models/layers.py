"""Layers shared by gensynth's generators and decoders.

`ConvTranspose` is a drop-in for `flax.linen.ConvTranspose` with the semantics
of PyTorch's `ConvTranspose2d` (the adjoint of a strided convolution), written
with a custom VJP. XLA:CPU lowers the weight gradient of `lax.conv_transpose`
to an rhs-dilated convolution that runs ~40x slower than a strided
convolution's weight gradient; here both gradients are ordinary strided-conv
gradients. See BUILD_NOTES.md for the measurement.
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

_DN = ('NHWC', 'HWIO', 'NHWC')


def _strided_conv(z, w, strides, padding):
  return lax.conv_general_dilated(z, w, strides, padding, dimension_numbers=_DN)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def conv_transpose_adjoint(x, w, strides, padding, out_hw):
  """Adjoint of `conv(z, w, strides, padding)` applied to x.

  Args:
    x: [N, h, w, Cin] input.
    w: [kh, kw, Cout, Cin] kernel of the strided conv this is the adjoint of
      (it maps Cout channels at size out_hw to Cin channels at size (h, w)).
    strides: (sh, sw).
    padding: ((top, bottom), (left, right)) of the strided conv.
    out_hw: (H, W) output size; the strided conv must map it to (h, w).

  Returns:
    [N, H, W, Cout].
  """
  y_shape = x.shape[:1] + tuple(out_hw) + (w.shape[2],)
  _, vjp = jax.vjp(lambda z: _strided_conv(z, w, strides, padding),
                   jnp.zeros(y_shape, x.dtype))
  return vjp(x)[0]


def _ct_fwd(x, w, strides, padding, out_hw):
  return conv_transpose_adjoint(x, w, strides, padding, out_hw), (x, w)


def _ct_bwd(strides, padding, out_hw, res, g):
  del out_hw
  x, w = res
  dx, vjp_w = jax.vjp(lambda w_: _strided_conv(g, w_, strides, padding), w)
  return dx, vjp_w(x)[0]


conv_transpose_adjoint.defvjp(_ct_fwd, _ct_bwd)


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

  @nn.compact
  def __call__(self, x):
    if x.ndim != 4:
      raise ValueError(f'ConvTranspose expects [N, H, W, C] input, got shape '
                       f'{x.shape}.')
    k, s, p = self.kernel_size, self.strides, self.padding
    # Kernel stored as HWIO of the strided conv: I = our output features.
    kernel = self.param('kernel', self.kernel_init,
                        (k, k, self.features, x.shape[-1]))
    out_hw = tuple((n - 1) * s - 2 * p + k for n in x.shape[1:3])
    y = conv_transpose_adjoint(x, kernel.astype(x.dtype), (s, s),
                               ((p, p), (p, p)), out_hw)
    if self.use_bias:
      y = y + self.param('bias', nn.initializers.zeros, (self.features,))
    return y


class ResBlock(nn.Module):
  """Pre-activation residual block at constant resolution."""
  features: int
  act: str = 'silu'

  @nn.compact
  def __call__(self, x):
    act = getattr(nn, self.act)
    h = nn.Conv(self.features, (3, 3))(act(x))
    h = nn.Conv(self.features, (3, 3))(act(h))
    if x.shape[-1] != self.features:
      x = nn.Conv(self.features, (1, 1))(x)
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

  @nn.compact
  def __call__(self, x):
    k = self.kernel_size
    kernel = self.param('kernel', nn.initializers.lecun_normal(),
                        (k, k, x.shape[-1], self.features))
    mask = causal_mask(k, include_center=self.include_center)[:, :, None, None]
    y = lax.conv_general_dilated(x, kernel * mask, (1, 1), 'SAME',
                                 dimension_numbers=_DN)
    return y + self.param('bias', nn.initializers.zeros, (self.features,))
