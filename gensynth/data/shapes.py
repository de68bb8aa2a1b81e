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
  out = np.zeros(np.broadcast_shapes(np.shape(kind), u.shape, v.shape,
                                     np.shape(r)), bool)
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


# --- Attribute shapes: named colours, sizes and positions, with captions. ---
#
# `make_attribute_shapes` draws every attribute from a small named set (with a
# little jitter), so each image has a caption ("a small red triangle in the
# top left") and an attribute vector, and `read_attributes` can read all of
# them back from pixels. Its random stream is separate from `make_shapes`'s:
# the unconditioned data (and every run trained on it) is unchanged.

COLOURS = {
    'red': (0.90, 0.15, 0.15), 'green': (0.15, 0.75, 0.20),
    'blue': (0.20, 0.35, 0.95), 'yellow': (0.95, 0.85, 0.15),
    'magenta': (0.85, 0.20, 0.85), 'cyan': (0.15, 0.85, 0.85)}
COLOUR_NAMES = tuple(COLOURS)
SIZE_NAMES = ('small', 'large')
# Radius as a fraction of the image side, per size.
SIZE_RANGES = ((0.13, 0.16), (0.22, 0.26))
POSITION_NAMES = ('top left', 'top', 'top right', 'left', 'centre', 'right',
                  'bottom left', 'bottom', 'bottom right')
_POSITION_PHRASES = ('in the top left', 'at the top', 'in the top right',
                     'on the left', 'in the centre', 'on the right',
                     'in the bottom left', 'at the bottom',
                     'in the bottom right')
# Centre of each grid column/row as a fraction of the side (+- 0.02 jitter).
GRID = (0.28, 0.5, 0.72)
_JITTER = 0.02
# (kind, colour) pairs that the 'holdout_pairs' training split never shows:
# each kind and each colour appears in exactly one, so every word is seen.
HELDOUT_PAIRS = (('disc', 'blue'), ('square', 'red'), ('triangle', 'green'),
                 ('ring', 'yellow'), ('cross', 'magenta'),
                 ('diamond', 'cyan'))
# The attribute vector: one-hot kind, RGB, radius, centre x, centre y (all
# fractions of the image side).
VECTOR_FIELDS = tuple(f'kind_{k}' for k in CLASS_NAMES) + (
    'red', 'green', 'blue', 'radius', 'x', 'y')
# Probability that a caption names each optional attribute (the kind is
# always named): a model learns that an attribute left out may be anything.
_MENTION = {'colour': 0.85, 'size': 0.7, 'position': 0.7}


def _pair_ids(pairs):
  return np.array([CLASS_NAMES.index(k) * len(COLOUR_NAMES) +
                   COLOUR_NAMES.index(c) for k, c in pairs])


def allowed_pairs(split):
  """Indices kind * 6 + colour of the (kind, colour) pairs `split` draws from:
  'all', 'train' (all but HELDOUT_PAIRS) or 'heldout' (only those)."""
  every = np.arange(len(CLASS_NAMES) * len(COLOUR_NAMES))
  held = _pair_ids(HELDOUT_PAIRS)
  if split == 'all':
    return every
  if split == 'train':
    return np.setdiff1d(every, held)
  if split == 'heldout':
    return held
  raise errors.DataError(f"pairs {split!r} unknown; expected 'all', 'train' "
                         "or 'heldout'.")


def caption(kind, colour, size, position, mention=(True, True, True),
            template=0):
  """One caption from attribute indices; `mention` = (colour, size,
  position) says which optional attributes it names."""
  words = [SIZE_NAMES[size]] if mention[1] else []
  words += [COLOUR_NAMES[colour]] if mention[0] else []
  where = [_POSITION_PHRASES[position]] if mention[2] else []
  if template == 0:
    return ' '.join(['a'] + words + [CLASS_NAMES[kind]] + where)
  return ', '.join([' '.join(words[::-1] + [CLASS_NAMES[kind]])] + where)


def make_attribute_shapes(num, *, image_size=32, seed=0, pairs='all'):
  """Shapes with named attributes.

  Returns:
    images uint8 [num, S, S, 3]; attrs, a dict of arrays [num]: kind, colour,
    size, position (indices into CLASS_NAMES, COLOUR_NAMES, SIZE_NAMES,
    POSITION_NAMES), vector float32 [num, 12] (VECTOR_FIELDS) and caption
    (str).
  """
  if num <= 0 or image_size < 32:
    # From 32 pixels up, read_attributes recovers every attribute exactly.
    raise errors.DataError(
        f'attribute shapes need num > 0 and image_size >= 32, got num={num}, '
        f'image_size={image_size}.')
  rng = np.random.default_rng([seed, 19])
  pair = rng.choice(allowed_pairs(pairs), num)
  kind, colour = np.divmod(pair, len(COLOUR_NAMES))
  size = rng.integers(0, len(SIZE_NAMES), num)
  position = rng.integers(0, len(POSITION_NAMES), num)
  s = image_size
  lo, hi = np.asarray(SIZE_RANGES).T
  r = rng.uniform(lo[size], hi[size]) * s
  grid = np.asarray(GRID)
  cx = (grid[position % 3] + rng.uniform(-_JITTER, _JITTER, num)) * s
  cy = (grid[position // 3] + rng.uniform(-_JITTER, _JITTER, num)) * s
  rgb = np.clip(np.asarray(list(COLOURS.values()))[colour] +
                rng.uniform(-0.05, 0.05, (num, 3)), 0, 1)
  bg = rng.uniform(0.0, 0.25, (num, 3))
  yy, xx = np.mgrid[0:s, 0:s].astype(np.float32) + 0.5
  mask = _masks(kind[:, None, None], xx[None] - cx[:, None, None],
                yy[None] - cy[:, None, None], r[:, None, None])
  img = np.where(mask[..., None], rgb[:, None, None], bg[:, None, None])
  img = img + rng.normal(0, 0.02, img.shape)
  images = (np.clip(img, 0, 1) * 255).round().astype(np.uint8)
  mention = rng.random((num, 3)) < np.array(
      [_MENTION['colour'], _MENTION['size'], _MENTION['position']])
  template = rng.integers(0, 2, num)
  captions = np.array([
      caption(*a, mention=tuple(m), template=t) for a, m, t in zip(
          zip(kind, colour, size, position), mention, template)])
  vector = np.concatenate([
      np.eye(len(CLASS_NAMES))[kind], rgb, (r / s)[:, None],
      (cx / s)[:, None], (cy / s)[:, None]], -1).astype(np.float32)
  attrs = dict(kind=kind.astype(np.int32), colour=colour.astype(np.int32),
               size=size.astype(np.int32), position=position.astype(np.int32),
               vector=vector, caption=captions,
               mentions=mention)
  return images, attrs


def _kind_geometry(samples=512):
  """Per kind: area / r**2 and the mask centroid's y offset / r, measured on a
  fine grid (the constants `read_attributes` inverts)."""
  g = (np.arange(samples) + 0.5) / samples * 2.4 - 1.2
  v, u = np.meshgrid(g, g, indexing='ij')
  px = (2.4 / samples)**2
  out = []
  for k in range(len(CLASS_NAMES)):
    m = _masks(np.array(k), u, v, 1.0)
    out.append((m.sum() * px, v[m].mean()))
  return np.array(out)


def count_regions(masks, *, min_size=1):
  """Number of 8-connected True regions of at least `min_size` pixels in
  each mask [N, H, W] (one labelling of the whole stack; regions never join
  across images)."""
  from scipy import ndimage  # pylint: disable=g-import-not-at-top
  masks = np.asarray(masks, bool)
  structure = np.zeros((3, 3, 3), bool)
  structure[1] = True  # 8-connectivity within an image, none across
  labels, count = ndimage.label(masks, structure=structure)
  big = np.bincount(labels.ravel(), minlength=count + 1) >= min_size
  big[0] = False
  # Each region lies in one image, so any of its pixels names that image.
  image_of = np.zeros(count + 1, np.int64)
  image_of[labels] = np.arange(len(masks))[:, None, None]
  return np.bincount(image_of[big], minlength=len(masks)).astype(np.int32)


def read_attributes(images):
  """Reads kind, colour, size and position back from attribute-shape images.

  Args:
    images: [N, S, S, 3], uint8 or float in [0, 1].

  Returns:
    a dict of arrays [N]: kind, colour, size, position (indices as in
    make_attribute_shapes), vector float32 [N, 12] (the measured attribute
    vector), found (False where no foreground was seen; the other fields
    are then 0) and objects (how many separate foreground regions of at
    least 3 pixels, 8-connected: 1 on every dataset image; a generator that
    draws a shape twice makes 2).

  The foreground is every pixel whose brightest channel exceeds 0.5 (the
  background stays below 0.3, every named colour above 0.7). The colour is
  the nearest named colour to its mean; the kind is the one whose mask,
  placed at the centroid with the radius its area implies, overlaps the
  foreground best (IoU); size and position follow from that radius and
  centre. Exact on the dataset's own images (tests/data/test_conditions.py).
  """
  x = np.asarray(images)
  if x.ndim != 4 or x.shape[-1] != 3 or x.shape[1] != x.shape[2]:
    raise errors.InputError(
        f'read_attributes needs square RGB images [N, S, S, 3], got shape '
        f'{x.shape}.')
  x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else \
      x.astype(np.float32)
  n, s = x.shape[0], x.shape[1]
  fg = x.max(-1) > 0.5
  area = fg.sum((1, 2)).astype(np.float64)
  found = area >= 3
  safe = np.maximum(area, 1)
  yy, xx = np.mgrid[0:s, 0:s].astype(np.float64) + 0.5
  mx = (fg * xx).sum((1, 2)) / safe
  my = (fg * yy).sum((1, 2)) / safe
  rgb = (x * fg[..., None]).sum((1, 2)) / safe[:, None]
  palette = np.asarray(list(COLOURS.values()))
  colour = np.argmin(((rgb[:, None] - palette[None])**2).sum(-1), -1)
  geom = _kind_geometry()
  kinds = np.arange(len(CLASS_NAMES))
  r = np.sqrt(safe[:, None] / geom[None, :, 0])  # [N, K]
  cy = my[:, None] - geom[None, :, 1] * r
  templates = _masks(kinds[None, :, None, None],
                     xx[None, None] - mx[:, None, None, None],
                     yy[None, None] - cy[..., None, None],
                     r[..., None, None])  # [N, K, S, S]
  inter = (templates & fg[:, None]).sum((2, 3))
  union = (templates | fg[:, None]).sum((2, 3))
  kind = np.argmax(inter / np.maximum(union, 1), -1)
  rows = np.arange(n)
  radius, centre_y = r[rows, kind] / s, cy[rows, kind] / s
  centre_x = mx / s
  split = (SIZE_RANGES[0][1] + SIZE_RANGES[1][0]) / 2
  size = (radius > split).astype(np.int32)
  grid = np.asarray(GRID)
  col = np.argmin(np.abs(centre_x[:, None] - grid), -1)
  row = np.argmin(np.abs(centre_y[:, None] - grid), -1)
  vector = np.concatenate([
      np.eye(len(CLASS_NAMES))[kind], rgb, radius[:, None],
      centre_x[:, None], centre_y[:, None]], -1).astype(np.float32)
  out = dict(kind=kind, colour=colour, size=size, position=row * 3 + col,
             vector=vector)
  out = {k: np.where(found.reshape((-1,) + (1,) * (v.ndim - 1)), v, 0)
         for k, v in out.items()}
  out['found'] = found
  out['objects'] = count_regions(fg, min_size=3)
  for k in ('kind', 'colour', 'size', 'position'):
    out[k] = out[k].astype(np.int32)
  return out
