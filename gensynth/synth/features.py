"""Image features used by the fusion rules, exposed as ops: [..., H, W, C]."""

import jax.numpy as jnp
from jax import lax

from gensynth import errors
from gensynth.synth import checks
from gensynth.synth import compiled
from gensynth.synth import xla_hints

# ITU-R BT.601 luma weights, as cv2.cvtColor(..., COLOR_RGB2GRAY) uses.
LUMA = (0.299, 0.587, 0.114)


def _shift_pad(x, axis, r):
  """Reflect-101 pad of r pixels along a spatial axis."""
  pad = [(0, 0)] * x.ndim
  pad[axis] = (r, r)
  return jnp.pad(x, pad, mode='reflect')


@compiled.op
def grey(x):
  """[..., H, W, C] -> [..., H, W, 1]: luma for RGB(A), identity for grey."""
  x = checks.image(x, 'x')
  if x.shape[-1] == 1:
    return x
  if x.shape[-1] not in (3, 4):
    raise errors.InputError(
        f'x: grey needs 1, 3 or 4 channels, got {x.shape[-1]}.')
  return sum(w * x[..., i:i + 1] for i, w in enumerate(LUMA))


def taps(x, axis, weights):
  """Correlation of x with the odd-length 1-D `weights` along `axis`
  (reflect-101 borders), as a sum of shifted slices."""
  r = len(weights) // 2
  p = _shift_pad(x, axis, r)
  n = x.shape[axis]
  out = 0.0
  for i, w in enumerate(weights):
    if w:
      out = out + w * lax.slice_in_dim(p, i, i + n, axis=axis % x.ndim)
  return out


def _box_axis(x, axis, r):
  """Window sum along one axis via a cumulative sum (cost independent of r)."""
  n = x.shape[axis]
  if r >= n:  # reflect-101 padding needs r < n; fall back to explicit taps
    return taps(x, axis, [1.0] * (2 * r + 1))
  ax = axis % x.ndim
  c = jnp.cumsum(_shift_pad(x, axis, r), axis=ax)
  zero = jnp.zeros_like(lax.slice_in_dim(c, 0, 1, axis=ax))
  c = jnp.concatenate([zero, c], ax)
  return (lax.slice_in_dim(c, 2 * r + 1, 2 * r + 1 + n, axis=ax) -
          lax.slice_in_dim(c, 0, n, axis=ax))


@compiled.op
def box_filter(x, radius):
  """Mean over a (2r+1)^2 window, reflect-101 borders. [..., H, W, C].

  Small radii use explicit taps; larger ones cumulative sums (O(1) per pixel).
  """
  x = checks.image(x, 'x')
  if radius < 0:
    raise errors.InputError(f'radius={radius} must be >= 0.')
  norm = 1.0 / (2 * radius + 1)**2
  if radius <= 2:
    k = [1.0] * (2 * radius + 1)
    return taps(taps(x, -3, k), -2, k) * norm
  return _box_axis(_box_axis(x, -3, radius), -2, radius) * norm


@compiled.op
def laplacian(x):
  """4-neighbour Laplacian (cv2.Laplacian ksize=1), reflect-101 borders."""
  x = checks.image(x, 'x')
  return taps(x, -3, (1.0, -2.0, 1.0)) + taps(x, -2, (1.0, -2.0, 1.0))


@compiled.op
def sobel(x):
  """(gx, gy) 3x3 Sobel derivatives (cv2.Sobel ksize=3), reflect-101."""
  x = checks.image(x, 'x')
  gx = taps(taps(x, -2, (-1.0, 0.0, 1.0)), -3, (1.0, 2.0, 1.0))
  gy = taps(taps(x, -3, (-1.0, 0.0, 1.0)), -2, (1.0, 2.0, 1.0))
  return gx, gy


@compiled.op
def contrast(x):
  """|Laplacian of grey| (Mertens et al. 2007), [..., H, W, 1]."""
  return jnp.abs(laplacian(grey(x)))


def _channels(x):
  return [x[..., i:i + 1] for i in range(x.shape[-1])]


@compiled.op
def saturation(x):
  """Colour saturation: sqrt of summed squared deviation from the channel mean
  (cv2.createMergeMertens' definition), [..., H, W, 1]."""
  x = checks.image(x, 'x')
  chans = _channels(x)
  mean = xla_hints.unrolled(jnp.add, chans) / len(chans)
  return jnp.sqrt(xla_hints.unrolled(jnp.add, [(c - mean)**2 for c in chans]))


@compiled.op
def well_exposedness(x, *, sigma=0.2):
  """prod_c exp(-(x_c - 0.5)^2 / (2 sigma^2)), [..., H, W, 1]."""
  x = checks.image(x, 'x')
  # Product of per-channel terms (not exp of a sum), as OpenCV rounds it.
  return xla_hints.unrolled(jnp.multiply, [jnp.exp(-(c - 0.5)**2 / (2 * sigma**2))
                                  for c in _channels(x)])


@compiled.op
def local_energy(x, *, radius=1):
  """Box-filtered squared values: the activity measure of multi-focus rules."""
  return box_filter(jnp.square(checks.image(x, 'x')), radius)


@compiled.op
def colour_stats(x):
  """Per-channel mean and standard deviation over H, W: ([..., C], [..., C])."""
  x = checks.image(x, 'x')
  return jnp.mean(x, axis=(-3, -2)), jnp.std(x, axis=(-3, -2))
