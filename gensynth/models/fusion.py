"""Learned fusion of K >= 2 images: a network that predicts how to combine them.

The idea of MEF-Net (Ma et al., IEEE TIP 2019), with a classical prior:

1. Each source is area-downsampled by 2^L to a working size whose short side
   is about `low_res` pixels (L depends on the image size, so 4K stacks cost
   about as much network as small ones), or by a fixed 2^L
   (`down_levels`: the scale the network was trained at, at any size).
2. A shared per-source encoder reads hand-made features of each source (its
   colours, grey level, Laplacian contrast, saturation, well-exposedness and
   mean brightness). Between layers the sources exchange information only
   through their mean and max over K (a DeepSets layer), so the network is
   equivariant to the order of the sources and the fusion invariant to it.
3. The head predicts a per-source logit correction at the working size,
   carried to full resolution edge-aware by a fast guided filter (He et al.)
   guided by each source's grey image.
4. Full-resolution weights are q^p * exp(correction), normalised over K,
   with the prior quality q Mertens' quality (exposure stacks), local
   Laplacian energy (multi-focus sets) or 1 (none). The exponent p is either
   learned (the parameter `prior_scale`, computed as exp(p log q +
   correction); the head starts at zero and p at 1, so an untrained
   `prior='mertens'` network is Mertens fusion) or fixed by
   `prior_exponent` (0.5: q^p is a square root, no log per pixel; the
   faster form at 4K, BUILD_NOTES.md).
5. The weights are applied through a Laplacian-pyramid blend (seam-free, as
   Mertens fusion) or per pixel (`blend='spatial'`, which keeps the in-focus
   pixels of multi-focus sets as they are).

Sources are [B, K, H, W, C], uint8/uint16 or floats in [0, 1]; any
H, W >= 2 and any K >= 2. Integer stacks are converted one source at a
time, as Mertens fusion does.
"""

import functools
import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax
import numpy as np

from gensynth import errors
from gensynth.synth import features
from gensynth.synth import fusion
from gensynth.synth import pyramid

PRIORS = ('mertens', 'focus', 'none')
BLENDS = ('pyramid', 'spatial')


def num_down(hw, low_res):
  """L: how many halvings bring min(H, W) closest to `low_res` (>= 0)."""
  short = min(hw)
  if short <= low_res:
    return 0
  return max(0, min(int(round(math.log2(short / low_res))),
                    pyramid.max_levels(hw) - 1))


def level_sizes(hw, levels):
  """(H, W) and its pyramid sizes, each ceil(previous / 2): levels + 1."""
  sizes = [tuple(hw)]
  for _ in range(levels):
    sizes.append(((sizes[-1][0] + 1) // 2, (sizes[-1][1] + 1) // 2))
  return sizes


def area_down(x, factor, out_hw):
  """Mean over factor x factor blocks of [..., H, W, C], the image
  edge-padded to out_hw * factor: the working-resolution copy of each
  source. Rows are reduced first (a middle axis with whole rows inside it,
  which XLA:CPU vectorises), then columns of the much smaller result; the
  padding is never materialised (a partial last block adds its missing
  samples as copies of the last row or column)."""
  if factor == 1:
    return x.astype(jnp.float32)
  x = _block_mean(x, x.ndim - 3, factor, out_hw[0])
  return _block_mean(x, x.ndim - 2, factor, out_hw[1])


def _block_mean(x, axis, factor, n_out):
  """Means of `factor` (a power of 2) consecutive samples along axis
  (edge-padded to n_out * factor samples), in float32."""
  n = x.shape[axis]
  full = min(n // factor, n_out)
  acc = _sum_dtype(x.dtype, factor)
  parts = []
  if full:
    head = lax.slice_in_dim(x, 0, full * factor, axis=axis).astype(acc)
    head = head.reshape(x.shape[:axis] + (full, factor) + x.shape[axis + 1:])
    # A tree of pairwise adds of strided slices: XLA:CPU fuses it into one
    # vectorised loop and runs it much faster than a reduce over the middle
    # axis (BUILD_NOTES.md, "Learned fusion"). Integer sums are exact.
    while head.shape[axis + 1] > 1:
      head = (lax.slice_in_dim(head, 0, None, 2, axis=axis + 1) +
              lax.slice_in_dim(head, 1, None, 2, axis=axis + 1))
    parts.append(jnp.squeeze(head, axis + 1).astype(jnp.float32))
  if full < n_out:  # one partial block: the rest plus copies of the last
    rest = jnp.sum(lax.slice_in_dim(x, full * factor, n, axis=axis), axis=axis,
                   keepdims=True, dtype=jnp.float32)
    last = lax.slice_in_dim(x, n - 1, n, axis=axis).astype(jnp.float32)
    parts.append(rest + (n_out * factor - n) * last)
  return jnp.concatenate(parts, axis) * (1.0 / factor)


def _sum_dtype(dtype, factor):
  """An accumulator that holds `factor` samples of dtype exactly (integers)
  or float32."""
  if dtype == jnp.uint8 and factor <= 257:
    return jnp.uint16
  if dtype in (jnp.uint8, jnp.uint16) and factor <= 2**15:
    return jnp.int32
  return jnp.float32


def upsample(x, sizes):
  """[..., h, w] planes at sizes[-1] up to sizes[0] by pyrUp steps (the
  chain of pyramid.up_axis calls, each axis run as one banded linear map:
  see `_banded_up`). Columns first, on the small input; the row map then
  reads whole rows of that [h, W] result, which XLA:CPU vectorises inside
  the full-resolution consumer (BUILD_NOTES, learned fusion, twelfth
  session)."""
  if len(sizes) == 1:
    return x
  rows = _banded_up(tuple(s[0] for s in sizes))
  cols = _banded_up(tuple(s[1] for s in sizes))
  return _apply_banded(_apply_banded(x, -1, cols), -2, rows)


def upsample_steps(x, sizes):
  """The reference: `upsample` as one pyramid.up_axis call per axis and
  level (what `_banded_up` folds into one map per axis)."""
  for hw in reversed(sizes[:-1]):
    x = pyramid.up_axis(pyramid.up_axis(x, -2, hw[0]), -1, hw[1])
  return x


@functools.lru_cache(maxsize=64)
def _banded_up(lengths):
  """The pyrUp chain lengths[-1] -> ... -> lengths[0] along one axis as a
  banded map: output block b (2^L samples, L = len(lengths) - 1) is a
  weighted sum of `taps` consecutive inputs starting at start[b].

  Returns (start [nb] int32, weights [nb, taps, 2^L] float32, out length).
  The chain is linear (its borders too): its matrix is the product of
  pyramid.up_matrix for each step, and the band holds every non-zero of it.
  """
  n, factor = lengths[-1], 2**(len(lengths) - 1)
  m = np.eye(n)
  for size, out in zip(lengths[:0:-1], lengths[-2::-1]):
    m = pyramid.up_matrix(size, out) @ m  # exact: dyadic weights, float64
  blocks = -(-lengths[0] // factor)
  m = np.concatenate([m, np.zeros((blocks * factor - m.shape[0], n))])
  m = m.reshape(blocks, factor, n)
  used = np.abs(m).max(axis=1) > 0  # [blocks, n]
  lo = np.argmax(used, axis=1)
  hi = n - 1 - np.argmax(used[:, ::-1], axis=1)
  taps = int(np.max(hi - lo + 1))
  start = np.minimum(lo, n - taps)
  idx = start[:, None] + np.arange(taps)
  weights = np.take_along_axis(m, idx[:, None, :], axis=2)  # [nb, f, taps]
  return (start.astype(np.int32),
          np.ascontiguousarray(weights.transpose(0, 2, 1), np.float32),
          lengths[0])


def _take_static(x, axis, index):
  """x indexed along axis by a static index array, as static slices of its
  runs of consecutive indices, concatenated: no gather op, which jaxlib
  0.12.1's XLA:CPU emits as a scalar loop together with everything fused
  around it (exp and log included)."""
  index = np.asarray(index)
  cuts = np.flatnonzero(np.diff(index) != 1) + 1
  parts = [lax.slice_in_dim(x, int(run[0]), int(run[-1]) + 1, axis=axis)
           for run in np.split(index, cuts)]
  return parts[0] if len(parts) == 1 else jnp.concatenate(parts, axis)


def _apply_banded(x, axis, banded):
  """x [..., n, ...] -> [..., out, ...] along axis (-1 or -2) by the map of
  `_banded_up`: per output block, `taps` multiply-adds of inputs taken by
  static slices, which XLA fuses into whatever reads the result."""
  start, weights, out = banded
  blocks, taps, factor = weights.shape
  axis %= x.ndim
  if axis == x.ndim - 1:
    terms = [_take_static(x, axis, start + t)[..., None] * weights[:, t]
             for t in range(taps)]
    y = functools.reduce(jnp.add, terms)  # [..., nb, f]
    return y.reshape(x.shape[:-1] + (blocks * factor,))[..., :out]
  terms = [_take_static(x, axis, start + t)[..., None, :] *
           weights[:, t, :, None] for t in range(taps)]
  y = functools.reduce(jnp.add, terms)  # [..., nb, f, W]
  y = y.reshape(x.shape[:-2] + (blocks * factor, x.shape[-1]))
  return y[..., :out, :]


def guided_coefficients(guide, src, radius, eps):
  """Guided-filter coefficients (mean a, mean b) of src given guide, both
  [..., H, W, 1]: the filtered output is a * guide + b."""
  box = lambda v: features.box_filter(v, radius)
  mean_i, mean_p = box(guide), box(src)
  var_i = box(guide * guide) - mean_i**2
  cov_ip = box(guide * src) - mean_i * mean_p
  a = cov_ip / (var_i + eps)
  b = mean_p - a * mean_i
  return box(a), box(b)


def source_features(x):
  """Per-source features [..., H, W, F] of sources [..., H, W, C] in [0, 1]."""
  g = features.grey(x)
  return jnp.concatenate([
      x, g,
      jnp.log(features.contrast(x) + 1e-3),
      features.saturation(x) if x.shape[-1] >= 3 else jnp.zeros_like(g),
      features.well_exposedness(g),
      jnp.broadcast_to(jnp.mean(g, axis=(-3, -2), keepdims=True), g.shape),
  ], axis=-1)


class SetMix(nn.Module):
  """DeepSets layer over the source axis of [B, K, H, W, D]: each source's
  features plus projections of their mean and max over K."""
  width: int

  @nn.compact
  def __call__(self, h):
    own = nn.Dense(self.width, name='own')(h)
    mean = nn.Dense(self.width, use_bias=False, name='mean')(
        jnp.mean(h, axis=1, keepdims=True))
    top = nn.Dense(self.width, use_bias=False, name='max')(
        jnp.max(h, axis=1, keepdims=True))
    return nn.gelu(own + mean + top)


class FusionNet(nn.Module):
  """Predicts per-pixel fusion weights of K sources and fuses them.

  Attributes:
    widths: channel widths of the encoder's two scales.
    prior: 'mertens', 'focus' or 'none' (see the module docstring).
    blend: 'pyramid' or 'spatial'.
    low_res: short side of the working resolution (about).
    guide_radius, guide_eps: the guided filter's box radius (working pixels)
      and regulariser.
    levels: pyramid levels of the blend (None: floor(log2(min(H, W))) + 1).
    down_levels: None: the working size is 2^-L of the image with L from
      the image size (`num_down`: short side about `low_res`), so the
      network's cost hardly grows with the image. An int L >= 0: always 2^-L
      (capped by the image's pyramid depth), so a network trained on crops
      sees a larger image at the scale it was trained at (its pixels span
      the same number of image pixels; the multi-focus recipe, whose defocus
      blur is a few pixels at any image size).
    prior_exponent: None: the prior's exponent p is the learned parameter
      `prior_scale` (starting at 1). A number: p is fixed, and 0.25, 0.5,
      0.75 and 1 are computed by square roots (no log or pow per pixel).
    weights_level: 0: the prior and the weights at full resolution, then the
      blend (two passes over the sources; an untrained network with the
      Mertens prior is Mertens fusion). 1: the prior and the weights at half
      resolution (the first Gaussian level, which the blend's pyramid makes
      anyway), blended in the same pass over the sources and normalised per
      level after filtering: no full-resolution prior, exp or weight pass.
  """
  widths: Sequence[int] = (16, 32)
  prior: str = 'mertens'
  blend: str = 'pyramid'
  low_res: int = 32
  guide_radius: int = 1
  guide_eps: float = 1e-2
  levels: int | None = None
  down_levels: int | None = None
  weights_level: int = 0
  prior_exponent: float | None = None

  def _conv(self, h, width, name, stride=1):
    b, k = h.shape[:2]
    y = nn.Conv(width, (3, 3), strides=stride, name=name)(
        h.reshape((b * k,) + h.shape[2:]))
    return y.reshape((b, k) + y.shape[1:])

  @nn.compact
  def __call__(self, sources):
    """sources [B, K, H, W, C] -> (fused [B, H, W, C], weights [B, K, H, W])."""
    if (self.prior not in PRIORS or self.blend not in BLENDS or
        self.weights_level not in (0, 1)):
      raise errors.ConfigError(
          f'FusionNet: prior={self.prior!r}, blend={self.blend!r}, '
          f'weights_level={self.weights_level!r}; expected one of {PRIORS}, '
          f'one of {BLENDS} and 0 or 1.')
    if self.prior_exponent is not None and not (
        isinstance(self.prior_exponent, (int, float)) and
        0 < self.prior_exponent <= 4):
      raise errors.ConfigError(
          f'FusionNet: prior_exponent={self.prior_exponent!r}; expected None '
          '(learned) or a number in (0, 4].')
    if self.down_levels is not None and not (
        isinstance(self.down_levels, int) and
        not isinstance(self.down_levels, bool) and self.down_levels >= 0):
      raise errors.ConfigError(
          f'FusionNet: down_levels={self.down_levels!r}; expected None (from '
          'the image size and low_res) or an int >= 0.')
    _, _, h, w, _ = sources.shape
    levels_down = (num_down((h, w), self.low_res) if self.down_levels is None
                   else min(self.down_levels, pyramid.max_levels((h, w)) - 1))
    sizes = level_sizes((h, w), levels_down)
    low = _to_float(sources.dtype)(area_down(sources, 2**levels_down,
                                             sizes[-1]))

    # Encoder at the working resolution, sources mixed only through SetMix.
    w0, w1 = self.widths
    hid = nn.gelu(self._conv(source_features(low), w0, 'in'))
    hid = SetMix(w0, name='mix0')(hid)
    down = nn.gelu(self._conv(hid, w1, 'down', stride=2))
    down = SetMix(w1, name='mix1')(down)
    context = jnp.mean(down, axis=(1, 2, 3), keepdims=True)  # whole stack
    down = nn.gelu(self._conv(down, w1, 'mid') +
                   nn.Dense(w1, name='context')(context))
    up = jax.image.resize(down, down.shape[:2] + hid.shape[2:4] +
                          down.shape[-1:], 'linear')
    hid = nn.gelu(self._conv(jnp.concatenate([hid, up], -1), w0, 'up'))
    hid = SetMix(w0, name='mix2')(hid)
    delta = nn.Dense(1, kernel_init=nn.initializers.zeros, name='head')(hid)
    self.sow('intermediates', 'delta', delta)  # for the smoothness loss

    # Edge-aware upsampling of the correction: guided filter coefficients at
    # the working size, applied to each source's full-resolution grey.
    a, c = guided_coefficients(features.grey(low), delta, self.guide_radius,
                               self.guide_eps)
    scale = (self.param('prior_scale', nn.initializers.ones, ())
             if self.prior_exponent is None else None)
    if self.weights_level == 1:
      return self._one_pass(sources, jnp.concatenate([a, c], -1), sizes,
                            scale)
    # Full resolution, one source at a time (a loop: the working set is one
    # source's planes, as in Mertens fusion). Unnormalised weight of source
    # k: u_k = q_k^p * exp(correction_k); weights u_k / sum_j u_j.
    # A map without a carry: jaxlib 0.12.1's XLA:CPU emits a loop body that
    # also accumulates into a carried buffer as scalar code, its exp and log
    # included (`--bench=learned_exposure`); the sum over K is one pass
    # afterwards.
    to_float = _to_float(sources.dtype)

    def weigh(xc):
      xk, ck = xc
      xf = to_float(xk)  # [B, H, W, C]
      ab = upsample(ck, sizes)  # [2, B, H, W]: guided-filter a and b
      # no float32 overflow
      return self._weight(ab[0] * features.grey(xf)[..., 0] + ab[1], xf,
                          scale, 80.0)

    xs = jnp.moveaxis(sources, 1, 0)  # [K, B, H, W, C]
    u = jax.lax.map(weigh, (xs, jnp.moveaxis(jnp.concatenate([a, c], -1),
                                             (1, 4), (0, 1))))
    total = jnp.sum(u, axis=0)
    if self.blend == 'spatial':
      fused = jnp.sum(u[..., None] * to_float(xs), axis=0) / total[..., None]
    else:
      fused = fusion.weighted_pyramid_fusion(xs, u, levels=self.levels,
                                             total=total)
    return fused, jnp.moveaxis(u / total[None], 0, 1)

  def _one_pass(self, sources, ab, sizes, scale):
    """weights_level=1: per source, its Gaussian pyramid; the log weight
    scale * prior + correction at the first level (half resolution); the
    weight's own pyramid (pyrUp to full resolution, pyrDown below). The
    blend accumulates sum_k band_k * weight_k and sum_k weight_k per level
    and divides at the end (normalised after filtering, so one pass)."""
    _, _, h, w, _ = sources.shape
    levels = self.levels or int(math.log2(min(h, w))) + 1
    if levels < 2:
      raise errors.ConfigError(
          f'FusionNet: weights_level=1 needs levels >= 2, got {levels}.')
    to_float = _to_float(sources.dtype)
    ab = jnp.moveaxis(ab, (1, 4), (0, 1))  # [K, 2, B, h, w], working size
    xs = jnp.moveaxis(sources, 1, 0)  # [K, B, H, W, C]
    to_full = lambda v: pyramid.up_axis(pyramid.up_axis(v, -2, h), -1, w)

    def weight(abk, g1):
      """Unnormalised weight [B, h/2, w/2] of one source from its
      half-resolution level g1 and its coefficients at the working size."""
      if len(sizes) > 1:
        abk = upsample(abk, sizes[1:])
      else:  # working size = full size: one pyrDown step
        abk = pyramid.down_axis(pyramid.down_axis(abk, -2), -1)
      # sums stay finite
      return self._weight(abk[0] * features.grey(g1)[..., 0] + abk[1], g1,
                          scale, 40.0)

    def add(carry, xc):
      xk, abk = xc
      g = pyramid.gaussian_pyramid(to_float(xk), levels)
      lap = [f - pyramid.pyr_up(c, f.shape[-3:-1])
             for f, c in zip(g[:-1], g[1:])] + [g[-1]]
      u = weight(abk, g[1])
      wts = [to_full(u), u]
      for _ in range(levels - 2):
        wts.append(pyramid.down_axis(pyramid.down_axis(wts[-1], -2), -1))
      num, den = carry
      return ([n + b * v[..., None] for n, b, v in zip(num, lap, wts)],
              [d + v for d, v in zip(den, wts)]), u

    def add_spatial(carry, xc):
      xk, abk = xc
      xf = to_float(xk)
      u = weight(abk, pyramid.down_axis(pyramid.down_axis(xf, -3), -2))
      v = to_full(u)
      acc, total = carry
      return (acc + v[..., None] * xf, total + v), u

    if self.blend == 'spatial':
      zeros = (jnp.zeros(xs.shape[1:], jnp.float32),
               jnp.zeros(xs.shape[1:-1], jnp.float32))
      (acc, total), u = jax.lax.scan(add_spatial, zeros, (xs, ab))
      fused = acc / total[..., None]
    else:
      shapes = jax.eval_shape(
          lambda v: pyramid.laplacian_pyramid(v, levels),
          jax.ShapeDtypeStruct(xs.shape[1:], jnp.float32))
      zeros = ([jnp.zeros(s.shape, jnp.float32) for s in shapes],
               [jnp.zeros(s.shape[:-1], jnp.float32) for s in shapes])
      (num, den), u = jax.lax.scan(add, zeros, (xs, ab))
      fused = pyramid.reconstruct([n / d[..., None] for n, d in zip(num, den)])
      total = den[0]
    # The full-resolution weights each source got (for inspection; unused
    # outputs cost nothing under jit).
    return fused, jnp.moveaxis(to_full(u) / total[None], 0, 1)

  def _weight(self, correction, x, scale, bound):
    """Unnormalised weight q^p * exp(correction) [B, H, W] of one source x
    [B, H, W, C], its exponent bounded by +-bound: exp(clip(scale * log q +
    correction)) with a learned exponent `scale`, else (prior_exponent set)
    q^p times exp(clip(correction, +-bound / 2)), which keeps the product a
    normal float32 for q >= 1e-12."""
    if scale is not None:
      return jnp.exp(jnp.clip(correction + scale * self._prior(x), -bound,
                              bound))
    u = jnp.exp(jnp.clip(correction, -bound / 2, bound / 2))
    q = self._prior_quality(x)
    return u if q is None else u * _power(q, self.prior_exponent)

  def _prior_quality(self, x):
    """Prior quality q > 0 [B, H, W] of one source x [B, H, W, C]; None for
    prior='none' (q = 1)."""
    if self.prior == 'mertens':
      if x.shape[-1] != 3:
        raise errors.InputError(
            f"sources: prior='mertens' needs RGB, got {x.shape[-1]} "
            'channels.')
      return fusion.mertens_quality(x[None])[0]
    if self.prior == 'focus':
      lap = features.laplacian(features.grey(x))
      return features.local_energy(lap, radius=2)[..., 0] + 1e-6
    return None

  def _prior(self, x):
    """Log prior weight log q [B, H, W] of one source x [B, H, W, C]."""
    q = self._prior_quality(x)
    return jnp.zeros(x.shape[:-1], x.dtype) if q is None else jnp.log(q)


def _power(q, p):
  """q^p; square roots for p in (0.25, 0.5, 0.75, 1)."""
  if p == 1:
    return q
  if p == 0.5:
    return jnp.sqrt(q)
  if p in (0.25, 0.75):
    r = jnp.sqrt(jnp.sqrt(q))
    return r if p == 0.25 else r * jnp.sqrt(q)
  return q**p


def _to_float(dtype):
  if dtype in (jnp.uint8, jnp.uint16):
    top = float(jnp.iinfo(dtype).max)
    return lambda v: v.astype(jnp.float32) / top
  return lambda v: v.astype(jnp.float32)


def from_config(model_config):
  """FusionNet from config.model."""
  return FusionNet(widths=tuple(model_config.widths), prior=model_config.prior,
                   blend=model_config.blend, low_res=model_config.low_res,
                   guide_radius=model_config.guide_radius,
                   guide_eps=model_config.guide_eps,
                   levels=model_config.levels or None,
                   down_levels=model_config.get('down_levels'),
                   weights_level=model_config.weights_level,
                   prior_exponent=model_config.get('prior_exponent'))
