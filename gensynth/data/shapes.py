"""The procedural 'shapes' dataset: coloured geometric shapes, generated in NumPy.

Each image holds one shape (the class: disc, square, triangle, ring, cross,
diamond) of random colour, size and position on a dark random-coloured
background. Generation is vectorised over the whole set and depends only on the
seed, so every machine produces byte-identical data.
"""

import numpy as np

from gensynth import errors

CLASS_NAMES = ('disc', 'square', 'triangle', 'ring', 'cross', 'diamond')


def _masks(kind, u, v, r):
  """Boolean masks [N, H, W] of shapes in centred coordinates u, v, radius r."""
  au, av = np.abs(u), np.abs(v)
  dist = np.sqrt(u**2 + v**2)
  table = {
      0: dist <= r,
      1: np.maximum(au, av) <= 0.8 * r,
      2: (v <= 0.7 * r) & (v >= 1.7 * au - r),
      3: (dist <= r) & (dist >= 0.55 * r),
      4: (np.minimum(au, av) <= 0.3 * r) & (np.maximum(au, av) <= r),
      5: au + av <= r,
  }
  out = np.zeros(u.shape, bool)
  for k, m in table.items():
    out |= (kind == k) & m
  return out


def make_shapes(num, *, image_size=32, channels=3, seed=0):
  """Returns (images uint8 [num, S, S, channels], labels int32 [num]).

  channels=1 gives grey images (the channel mean), an MNIST-shaped stand-in.
  """
  if num <= 0 or image_size < 8:
    raise errors.DataError(
        f'shapes dataset needs num > 0 and image_size >= 8, got '
        f'num={num}, image_size={image_size}.')
  if channels not in (1, 3):
    raise errors.DataError(
        f'shapes dataset has 1 or 3 channels, got {channels}.')
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, len(CLASS_NAMES), num).astype(np.int32)
  s = image_size
  r = rng.uniform(0.2, 0.38, num) * s
  cy = rng.uniform(0, 1, num) * (s - 2 * r) + r
  cx = rng.uniform(0, 1, num) * (s - 2 * r) + r
  fg = rng.uniform(0.45, 1.0, (num, 3))
  bg = rng.uniform(0.0, 0.3, (num, 3))
  yy, xx = np.mgrid[0:s, 0:s].astype(np.float32) + 0.5
  u = xx[None] - cx[:, None, None]
  v = yy[None] - cy[:, None, None]
  mask = _masks(labels[:, None, None], u, v, r[:, None, None])
  img = np.where(mask[..., None], fg[:, None, None], bg[:, None, None])
  img = img + rng.normal(0, 0.02, img.shape)
  if channels == 1:
    img = img.mean(-1, keepdims=True)
  return (np.clip(img, 0, 1) * 255).round().astype(np.uint8), labels
