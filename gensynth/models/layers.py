"""Layers shared by gensynth's encoders, discriminators, generators and decoders.

XLA:CPU runs two of a strided convolution's three computations slowly: the
input gradient (the transposed convolution, lowered to an lhs-dilated
convolution that multiplies mostly zeros) and, for `lax.conv_transpose`, the
weight gradient (an rhs-dilated convolution, ~40x slower than a strided
convolution's weight gradient). Here both are avoided:

* `conv_adjoint` computes a transposed convolution (the adjoint of a strided
  convolution) in sub-pixel form: one stride-1 convolution whose output
  channels are the stride^2 output phases, then a depth-to-space reshuffle.
  It is exact (the same sums in another order), and 1.6-4.4x faster than the
  lhs-dilated form on XLA:CPU at the sizes gensynth uses (BUILD_NOTES.md).
* `strided_conv` is a strided convolution whose custom VJP uses
  `conv_adjoint` for the input gradient and the ordinary strided-conv weight
  gradient. `Conv` is `flax.linen.Conv` running on it (same parameters).
* `ConvTranspose` (PyTorch's `ConvTranspose2d` semantics) runs `conv_adjoint`
  forward; its input gradient is a strided convolution and its weight
  gradient that convolution's weight gradient.
* Convolutions from or to very few channels, which XLA:CPU runs at a tenth to
  a quarter of its usual rate: with one input channel the forward pass is an
  elementwise sum of (strided) shifted views; with at most 4 output channels
  (1x1 convs to logits, sub-pixel convs to 1-channel images) it is one
  matmul to every tap followed by a sum of shifted slices.
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

_DN = ('NHWC', 'HWIO', 'NHWC')


def _strided_conv_lax(z, w, strides, padding):
  return lax.conv_general_dilated(z, w, strides, padding, dimension_numbers=_DN)


# Stride-1 convs with at most this many output channels run as
# `_valid_conv_by_taps` (when its per-pixel product is no wider than the input).
_MAX_FEW_OUTPUTS = 4


def _few_outputs(kernel_shape):
  kh, kw, ci, co = kernel_shape
  return co <= _MAX_FEW_OUTPUTS and kh * kw * co <= ci


def _valid_conv_by_taps(x, k):
  """Stride-1 VALID conv (NHWC, HWIO) as one matmul of every input pixel with
  all kh*kw taps, then a sum of kh*kw shifted slices of that product.

  For convs with few output channels (the transposed convs that produce
  1-channel images): XLA:CPU runs those at ~25 GFLOP/s, e.g. 1.15 ms for the
  64->1 transposed conv of 64 14x14 maps to 28x28 against 0.51 ms here, and
  0.96 -> 0.28 ms for the GAN discriminator's input gradient (BUILD_NOTES.md).
  See `_few_outputs` for when it is used.
  """
  kh, kw, ci, co = k.shape
  oh, ow = x.shape[1] - kh + 1, x.shape[2] - kw + 1
  taps = jnp.einsum('nhwc,cto->nhwto', x,
                    k.transpose(2, 0, 1, 3).reshape(ci, kh * kw, co))
  y = None
  for i in range(kh):
    for j in range(kw):
      term = taps[:, i:i + oh, j:j + ow, i * kw + j]
      y = term if y is None else y + term
  return y


def conv_adjoint(g, w, strides, padding, in_hw):
  """Adjoint (transpose) of `x -> conv(x, w, strides, padding)` applied to g.

  Args:
    g: [N, h, w, Cout] cotangent of the strided conv's output.
    w: [kh, kw, Cin, Cout] HWIO kernel of the strided conv.
    strides: (sh, sw).
    padding: ((top, bottom), (left, right)), non-negative.
    in_hw: (H, W) spatial size of the strided conv's input x.

  Returns:
    [N, H, W, Cin], equal to `jax.vjp(lambda x: conv(x, w, ...), x)[1](g)`.

  For each axis with stride s and kernel k, output position j = s*m + q - p
  (phase q) collects g[m - r] * w[q + s*r] for r < ceil(k / s): a stride-1
  convolution of g with R = ceil(k / s) taps per phase. All s_h*s_w phases run
  as one convolution with s_h*s_w*Cin output channels.
  """
  n, h, wd, cout = g.shape
  kh, kw, cin, _ = w.shape
  (sh, sw), ((ph, _), (pw, _)) = strides, padding
  rh, rw = -(-kh // sh), -(-kw // sw)
  mh, mw = -(-(in_hw[0] + ph) // sh), -(-(in_hw[1] + pw) // sw)
  # Kernel taps a = s*r + q, zero-padded to R*s taps, r reversed (conv order).
  k = jnp.pad(w, ((0, rh * sh - kh), (0, rw * sw - kw), (0, 0), (0, 0)))
  k = k.reshape(rh, sh, rw, sw, cin, cout)[::-1, :, ::-1]
  k = k.transpose(0, 2, 5, 1, 3, 4).reshape(rh, rw, cout, sh * sw * cin)
  # R-1 zeros before g; after it, pad (or crop) to the M rows the output uses.
  gp = lax.pad(g, jnp.zeros((), g.dtype),
               ((0, 0, 0), (rh - 1, mh - h, 0), (rw - 1, mw - wd, 0),
                (0, 0, 0)))
  if _few_outputs(k.shape):
    y = _valid_conv_by_taps(gp, k)  # few output channels (to images)
  else:
    y = lax.conv_general_dilated(gp, k, (1, 1), 'VALID',
                                 dimension_numbers=_DN)
  y = y.reshape(n, mh, mw, sh, sw, cin).transpose(0, 1, 3, 2, 4, 5)
  y = y.reshape(n, mh * sh, mw * sw, cin)
  return y[:, ph:ph + in_hw[0], pw:pw + in_hw[1]]


def _strided_forward(x, w, strides, padding):
  """A strided conv's value: the elementwise tap sum for one input channel
  (XLA:CPU runs those convs at ~11 GFLOP/s: 1.44 ms vs 0.28 ms for a 4x4
  stride-2 1->32 conv of 128 28x28 images, BUILD_NOTES.md), else lax."""
  if _use_tap_sum(x, w):
    return _single_channel_conv_fma(x, w, padding, strides)
  return _strided_conv_lax(x, w, strides, padding)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def strided_conv(x, w, strides, padding):
  """`lax.conv_general_dilated` (NHWC, HWIO) whose input gradient is the
  sub-pixel `conv_adjoint`; padding is explicit ((top, bottom), (l, r)).
  With one input channel the value is the elementwise tap sum."""
  return _strided_forward(x, w, strides, padding)


def _sc_fwd(x, w, strides, padding):
  return _strided_forward(x, w, strides, padding), (x, w)


def _sc_bwd(strides, padding, res, g):
  x, w = res
  dx = conv_adjoint(g, w, strides, padding, x.shape[1:3])
  _, vjp_w = jax.vjp(lambda w_: _strided_conv_lax(x, w_, strides, padding), w)
  return dx, vjp_w(g)[0]


strided_conv.defvjp(_sc_fwd, _sc_bwd)


def _single_channel_conv_fma(x, w, padding, strides=(1, 1)):
  """Conv of a 1-channel x: (strided) shifted views times kernel taps, summed.

  XLA:CPU runs a convolution with one input channel at ~11 GFLOP/s (3.1 ms
  for a 3x3 1->16 conv of 128 28x28 images); as one elementwise fusion over
  the kh*kw shifted views it takes 0.3 ms (BUILD_NOTES.md).
  """
  kh, kw, _, _ = w.shape
  (pt, pb), (pl, pr) = padding
  sh, sw = strides
  xp = lax.pad(x[..., 0], jnp.zeros((), x.dtype),
               ((0, 0, 0), (pt, pb, 0), (pl, pr, 0)))
  oh, ow = (xp.shape[1] - kh) // sh + 1, (xp.shape[2] - kw) // sw + 1
  y = None
  for i in range(kh):
    for j in range(kw):
      view = xp[:, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw]
      term = view[..., None] * w[i, j, 0]
      y = term if y is None else y + term
  return y


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def single_channel_conv(x, w, padding):
  """Stride-1 NHWC/HWIO convolution of a 1-channel input, explicit padding
  ((top, bottom), (left, right)), non-negative. The forward pass is the
  elementwise tap sum; both gradients are lax's convolution gradients (the
  weight gradient of a 1-channel conv runs fast on XLA:CPU)."""
  return _single_channel_conv_fma(x, w, padding)


def _scc_fwd(x, w, padding):
  return _single_channel_conv_fma(x, w, padding), (x, w)


def _scc_bwd(padding, res, g):
  x, w = res
  _, vjp = jax.vjp(
      lambda x_, w_: lax.conv_general_dilated(x_, w_, (1, 1), padding,
                                              dimension_numbers=_DN), x, w)
  return vjp(g)


single_channel_conv.defvjp(_scc_fwd, _scc_bwd)

# Largest kernel (taps) for which the elementwise tap sum replaces the conv.
_MAX_SINGLE_CHANNEL_TAPS = 49


def _use_tap_sum(x, w):
  taps = w.shape[0] * w.shape[1]
  return x.shape[-1] == 1 and taps <= _MAX_SINGLE_CHANNEL_TAPS


def _is_nhwc_hwio(dimension_numbers, lhs_shape, rhs_shape):
  if dimension_numbers is None:
    return False
  want = lax.conv_dimension_numbers(lhs_shape, rhs_shape, _DN)
  got = lax.conv_dimension_numbers(lhs_shape, rhs_shape, dimension_numbers)
  return got == want


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None,
                         rhs_dilation=None, dimension_numbers=None,
                         feature_group_count=1, batch_group_count=1,
                         precision=None, preferred_element_type=None):
  """Drop-in for `lax.conv_general_dilated`: 2-D NHWC/HWIO convs without
  dilation or groups run as `strided_conv` when strided, as
  `single_channel_conv` when stride 1 with one input channel, and as
  `_valid_conv_by_taps` when stride 1 with few output channels (e.g. a 1x1
  conv to image logits); the rest as lax."""
  plain = (lhs.ndim == 4 and _is_nhwc_hwio(dimension_numbers, lhs.shape,
                                           rhs.shape)
           and all(d == 1 for d in (lhs_dilation or (1, 1)))
           and all(d == 1 for d in (rhs_dilation or (1, 1)))
           and feature_group_count == 1 and batch_group_count == 1
           and precision is None and preferred_element_type is None)
  if plain:
    pads = (lax.padtype_to_pads(lhs.shape[1:3], rhs.shape[:2], window_strides,
                                padding) if isinstance(padding, str)
            else tuple(tuple(int(q) for q in p) for p in padding))
    if all(p >= 0 for pair in pads for p in pair):
      if max(window_strides) > 1:
        return strided_conv(lhs, rhs, tuple(window_strides), pads)
      if _use_tap_sum(lhs, rhs):
        return single_channel_conv(lhs, rhs, pads)
      if _few_outputs(rhs.shape):
        zero = jnp.zeros((), lhs.dtype)
        return _valid_conv_by_taps(
            lax.pad(lhs, zero, ((0, 0, 0),) + tuple(
                (lo, hi, 0) for lo, hi in pads) + ((0, 0, 0),)), rhs)
  return lax.conv_general_dilated(
      lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation,
      rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
      feature_group_count=feature_group_count,
      batch_group_count=batch_group_count, precision=precision,
      preferred_element_type=preferred_element_type)


# `flax.linen.Conv` (same parameters and names) on gensynth's fast convs.
Conv = functools.partial(nn.Conv, conv_general_dilated=conv_general_dilated)


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
  return conv_adjoint(x, w, strides, padding, out_hw)


def _ct_fwd(x, w, strides, padding, out_hw):
  return conv_transpose_adjoint(x, w, strides, padding, out_hw), (x, w)


def _ct_bwd(strides, padding, out_hw, res, g):
  del out_hw
  x, w = res
  # The input gradient is the strided conv of g, the weight gradient that
  # conv's. (lax's conv even for a 1-channel g: the tap sum measured faster
  # alone but made the GAN step ~10% slower, BUILD_NOTES.md.)
  dx, vjp_w = jax.vjp(lambda w_: _strided_conv_lax(g, w_, strides, padding), w)
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


@jax.custom_jvp
def silu(x):
  """`jax.nn.silu` (x * sigmoid(x)) with a hand-written derivative.

  Autodiff of x * sigmoid(x) keeps the sigmoid as a residual: XLA:CPU writes
  it in one pass and multiplies in another. Here the forward pass is one
  elementwise pass, and the derivative s * (1 + x * (1 - s)) is one
  expression of x that fuses into the backward pass (BUILD_NOTES.md).
  """
  return x * jax.nn.sigmoid(x)


@silu.defjvp
def _silu_jvp(primals, tangents):
  (x,), (t,) = primals, tangents
  s = jax.nn.sigmoid(x)
  return x * s, t * (s * (1 + x * (1 - s)))


def identity(x):
  """No activation (for ablations: what a network's activations cost)."""
  return x


def activation(name):
  """The activation called `name` in flax.linen, `silu` being `layers.silu`;
  `identity` is no activation."""
  if name == 'silu':
    return silu
  if name == 'identity':
    return identity
  act = getattr(nn, name, None)
  if act is None or not callable(act):
    raise ValueError(f'activation {name!r} unknown; expected a flax.linen '
                     'activation name such as silu, relu, gelu, or identity.')
  return act


class ResBlock(nn.Module):
  """Pre-activation residual block at constant resolution."""
  features: int
  act: str = 'silu'

  @nn.compact
  def __call__(self, x):
    act = activation(self.act)
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
    # The rows below the centre are masked out: convolve with the top k//2+1
    # rows only (padding above, none below): 6 taps instead of 9 for k=3.
    c = k // 2
    y = conv_general_dilated(x, (kernel * mask)[:c + 1], (1, 1),
                             ((c, 0), (c, c)), dimension_numbers=_DN)
    return y + self.param('bias', nn.initializers.zeros, (self.features,))
