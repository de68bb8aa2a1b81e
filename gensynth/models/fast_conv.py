"""XLA:CPU-motivated lowerings of gensynth's convolutions (`conv_impl='fast'`).

Idea: XLA:CPU runs some convolutions far below its usual rate, so each of
those is rewritten here as a mathematically equal computation that XLA runs
well. Every function computes exactly what its `lax` counterpart computes
(the same sums in another order); `gensynth.models.layers` picks between these
and plain `lax`/`flax.linen` with `conv_impl` ('auto' | 'xla' | 'fast'), and
tests/models/test_layers.py checks values and gradients of both.

Each path, and the benchmark that justifies it (figures in BUILD_NOTES.md,
"Models" and "Train steps on a GPU"):

* `conv_adjoint`: a transposed convolution (the input gradient of a strided
  conv, or a decoder's upsampling) in sub-pixel form, one stride-1 conv whose
  output channels are the stride^2 phases, then a depth-to-space reshuffle.
  lax lowers it to an lhs-dilated conv that multiplies mostly zeros.
  Benchmarks: `launch.benchmark --bench=conv_layers` and `--bench=layer_impl`.
* `strided_conv`: a strided conv whose custom VJP uses `conv_adjoint` for the
  input gradient. Benchmark: `--bench=layer_impl`.
* `conv_transpose_adjoint`: `conv_adjoint` as a layer with its own VJP (its
  input gradient is a strided conv), so the decoder never runs lax's
  rhs-dilated weight gradient. Benchmark: `--bench=layer_impl`.
* `single_channel_conv` and the one-input-channel branch of `strided_conv`:
  an elementwise sum of shifted views, since XLA:CPU runs convs with one input
  channel slowly. Benchmark: `--bench=gan_throughput` (D's first layer).
* `valid_conv_by_taps`: stride-1 convs to at most 4 output channels (1x1 convs
  to logits, sub-pixel convs to 1-channel images) as one matmul to every tap
  and a sum of shifted slices. Benchmarks: `--bench=gan_throughput`,
  `--bench=vae_throughput`.
* `silu` with a hand-written derivative that fuses into the backward pass.
  Benchmark: `--bench=vae_throughput`.
* `conv_general_dilated`: a drop-in for `lax.conv_general_dilated` that
  routes each plain 2-D NHWC/HWIO conv to the paths above.
"""

import functools

import jax
import jax.numpy as jnp
from jax import lax

DIMENSION_NUMBERS = ('NHWC', 'HWIO', 'NHWC')
_DN = DIMENSION_NUMBERS

# Stride-1 convs with at most this many output channels run as
# `valid_conv_by_taps` (when its per-pixel product is no wider than the input).
_MAX_FEW_OUTPUTS = 4
# Largest kernel (taps) for which the elementwise tap sum replaces the conv.
_MAX_SINGLE_CHANNEL_TAPS = 49


def lax_conv(x, w, strides, padding):
  """Plain `lax.conv_general_dilated` in gensynth's layout (NHWC, HWIO)."""
  return lax.conv_general_dilated(x, w, strides, padding, dimension_numbers=_DN)


def _few_outputs(kernel_shape):
  kh, kw, ci, co = kernel_shape
  return co <= _MAX_FEW_OUTPUTS and kh * kw * co <= ci


def _use_tap_sum(x, w):
  taps = w.shape[0] * w.shape[1]
  return x.shape[-1] == 1 and taps <= _MAX_SINGLE_CHANNEL_TAPS


def valid_conv_by_taps(x, k):
  """Stride-1 VALID conv (NHWC, HWIO) as one matmul of every input pixel with
  all kh*kw taps, then a sum of kh*kw shifted slices of that product.

  Why: XLA:CPU runs convs with few output channels slowly, and a matmul
  plus a shift-add fusion fast (`--bench=gan_throughput`).
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
  n, h, wd, _ = g.shape
  kh, kw, cin, cout = w.shape
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
    y = valid_conv_by_taps(gp, k)  # few output channels (to images)
  else:
    y = lax.conv_general_dilated(gp, k, (1, 1), 'VALID',
                                 dimension_numbers=_DN)
  y = y.reshape(n, mh, mw, sh, sw, cin).transpose(0, 1, 3, 2, 4, 5)
  y = y.reshape(n, mh * sh, mw * sw, cin)
  return y[:, ph:ph + in_hw[0], pw:pw + in_hw[1]]


def _strided_forward(x, w, strides, padding):
  """A strided conv's value: the elementwise tap sum for one input channel,
  else lax."""
  if _use_tap_sum(x, w):
    return _single_channel_conv_fma(x, w, padding, strides)
  return lax_conv(x, w, strides, padding)


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
  _, vjp_w = jax.vjp(lambda w_: lax_conv(x, w_, strides, padding), w)
  return dx, vjp_w(g)[0]


strided_conv.defvjp(_sc_fwd, _sc_bwd)


def _single_channel_conv_fma(x, w, padding, strides=(1, 1)):
  """Conv of a 1-channel x: (strided) shifted views times kernel taps, summed
  in one elementwise fusion (`--bench=gan_throughput`)."""
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
  _, vjp = jax.vjp(lambda x_, w_: lax_conv(x_, w_, (1, 1), padding), x, w)
  return vjp(g)


single_channel_conv.defvjp(_scc_fwd, _scc_bwd)


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
  `valid_conv_by_taps` when stride 1 with few output channels (e.g. a 1x1
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
        return valid_conv_by_taps(
            lax.pad(lhs, zero, ((0, 0, 0),) + tuple(
                (lo, hi, 0) for lo, hi in pads) + ((0, 0, 0),)), rhs)
  return lax.conv_general_dilated(
      lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation,
      rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
      feature_group_count=feature_group_count,
      batch_group_count=batch_group_count, precision=precision,
      preferred_element_type=preferred_element_type)


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
  # conv's: lax's conv even for a 1-channel g, since the tap sum made the
  # whole GAN step slower (`--bench=gan_throughput`).
  dx, vjp_w = jax.vjp(lambda w_: lax_conv(g, w_, strides, padding), w)
  return dx, vjp_w(x)[0]


conv_transpose_adjoint.defvjp(_ct_fwd, _ct_bwd)


@jax.custom_jvp
def silu(x):
  """`jax.nn.silu` (x * sigmoid(x)) with a hand-written derivative.

  Why: autodiff of x * sigmoid(x) keeps the sigmoid as a residual, which
  XLA:CPU writes in one pass and multiplies in another; the derivative
  s * (1 + x * (1 - s)) is one expression of x that fuses into the backward
  pass (`--bench=vae_throughput`).
  """
  return x * jax.nn.sigmoid(x)


@silu.defjvp
def _silu_jvp(primals, tangents):
  (x,), (t,) = primals, tangents
  s = jax.nn.sigmoid(x)
  return x * s, t * (s * (1 + x * (1 - s)))
