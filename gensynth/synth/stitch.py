"""Concatenation and grids (panoramas: gensynth.synth.panorama).

hconcat puts images side by side (a horizontal strip), vconcat stacks them
top to bottom. Sizes that differ along the joined edge are handled by
`policy`: 'pad' (fill value, placed by `align`), 'resize' (to the largest
extent, keeping aspect ratio) or 'error'.
"""

import jax
import jax.numpy as jnp
import numpy as np

from gensynth import errors
from gensynth.synth import checks

POLICIES = ('pad', 'resize', 'error')
ALIGNS = ('start', 'center', 'end')


def _fit_extent(x, size, axis, *, policy, align, fill):
  """Makes x's extent along `axis` (-3 or -2) equal to size."""
  n = x.shape[axis]
  if n == size:
    return x
  if policy == 'resize':
    other = -2 if axis == -3 else -3
    scale = size / n
    shape = list(x.shape)
    shape[axis] = size
    shape[other] = max(1, round(x.shape[other] * scale))
    return jax.image.resize(x, shape, 'linear')
  extra = size - n
  before = {'start': 0, 'center': extra // 2, 'end': extra}[align]
  pad = [(0, 0)] * x.ndim
  pad[axis] = (before, extra - before)
  return jnp.pad(x, pad, constant_values=fill)


def _check(images, policy, align, spacing, fill):
  if not np.isfinite(fill):
    raise errors.InputError(f'fill={fill}: expected a finite pixel value.')
  if policy not in POLICIES:
    raise errors.InputError(f'policy={policy!r}; expected one of {POLICIES}.')
  if align not in ALIGNS:
    raise errors.InputError(f'align={align!r}; expected one of {ALIGNS}.')
  if spacing < 0:
    raise errors.InputError(f'spacing={spacing} must be >= 0.')
  if not images:
    raise errors.InputError('images: nothing to concatenate.')
  xs = [checks.image(x, f'images[{i}]') for i, x in enumerate(images)]
  lead = {x.shape[:-3] + x.shape[-1:] for x in xs}
  if len(lead) > 1:
    raise errors.InputError(
        f'images: batch shapes and channel counts must agree, '
        f'got {[tuple(x.shape) for x in xs]}.')
  return xs


def _concat(images, axis, *, policy, align, spacing, fill):
  cross = -2 if axis == -3 else -3  # the edge that must match
  xs = _check(images, policy, align, spacing, fill)
  size = max(x.shape[cross] for x in xs)
  if policy == 'error' and any(x.shape[cross] != size for x in xs):
    side = 'heights' if cross == -3 else 'widths'
    raise errors.InputError(
        f'images: {side} differ ({[x.shape[cross] for x in xs]}) '
        "and policy='error'; use policy='pad' or 'resize'.")
  xs = [_fit_extent(x, size, cross, policy=policy, align=align, fill=fill) for x in xs]
  if spacing:
    gap_shape = list(xs[0].shape)
    gap_shape[axis] = spacing
    gap = jnp.full(gap_shape, fill, xs[0].dtype)
    xs = [p for x in xs for p in (x, gap)][:-1]
  return jnp.concatenate(xs, axis=axis)


def hconcat(images, *, policy='error', align='center', spacing=0, fill=0.0):
  """Side by side: [..., H_i, W_i, C] -> [..., H, sum W_i (+ gaps), C]."""
  return _concat(images, -2, policy=policy, align=align, spacing=spacing,
                 fill=fill)


def vconcat(images, *, policy='error', align='center', spacing=0, fill=0.0):
  """Top to bottom: [..., H_i, W_i, C] -> [..., sum H_i (+ gaps), W, C]."""
  return _concat(images, -3, policy=policy, align=align, spacing=spacing,
                 fill=fill)


def grid(images, *, cols, policy='pad', align='center', spacing=0, fill=0.0):
  """Row-major grid of N images with `cols` columns; cells share one size.

  With policy='pad' each cell is padded to the largest height and width; the
  last row is completed with empty (fill) cells.
  """
  xs = _check(images, policy, align, spacing, fill)
  if cols < 1:
    raise errors.InputError(f'cols={cols} must be >= 1.')
  h = max(x.shape[-3] for x in xs)
  w = max(x.shape[-2] for x in xs)
  if policy == 'error' and any(x.shape[-3:-1] != (h, w) for x in xs):
    raise errors.InputError(
        f'images: sizes differ ({[x.shape[-3:-1] for x in xs]}) '
        "and policy='error'.")
  cells = []
  for x in xs:
    if policy == 'resize':
      x = jax.image.resize(x, x.shape[:-3] + (h, w, x.shape[-1]), 'linear')
    cells.append(_fit_extent(_fit_extent(x, h, -3, policy='pad', align=align, fill=fill), w,
                      -2, policy='pad', align=align, fill=fill))
  while len(cells) % cols:
    cells.append(jnp.full_like(cells[0], fill))
  rows = [hconcat(cells[i:i + cols], spacing=spacing, fill=fill)
          for i in range(0, len(cells), cols)]
  return vconcat(rows, spacing=spacing, fill=fill)
