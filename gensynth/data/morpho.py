"""Morpho-MNIST-style morphometrics of digits, as vectors and as captions.

After Castro et al., "Morpho-MNIST" (2019): each grey digit is binarised at
half intensity and measured with array ops over the whole set at once:

  thickness  area / skeleton length (pixels); the skeleton comes from one
             scikit-image `skeletonize` call on a mosaic of every digit
  slant      shear of the digit, atan(-mu11 / mu02) from its central moments
             (radians; > 0 leans right, top to the right of the bottom)
  width, height  of the bounding box (pixels)
  area       foreground pixels

Conditions of a digit (`vectors`, `captions`) name its class as well as its
shape, so a model conditioned on them alone is asked for a digit: vectors
are the one-hot class (digit_0..digit_9) followed by FIELDS; captions name
the digit and, when it is clearly thin or thick or leans, that too: "a
thick seven slanting right", "a thin two", "a four" (a four of middling
thickness, upright: the words left out are the middle category, not "any").
"""

import numpy as np

from gensynth import errors

FIELDS = ('thickness', 'slant', 'width', 'height', 'area')
VECTOR_FIELDS = tuple(f'digit_{i}' for i in range(10)) + FIELDS
DIGITS = ('zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven',
          'eight', 'nine')
# Caption thresholds: near the terciles of thickness and slant over the
# 60,000 MNIST training digits (BUILD_NOTES.md, "MNIST morphometrics").
THIN, THICK = 2.5, 3.25
SLANT = 0.2  # radians (about 11 degrees); the shares in BUILD_NOTES.md


def _skeleton_lengths(fg):
  """Skeleton pixel count of each binary image fg [N, H, W], from a single
  skeletonize call on a mosaic with a blank pixel between digits."""
  from skimage import morphology  # pylint: disable=g-import-not-at-top
  n, h, w = fg.shape
  cols = int(np.ceil(np.sqrt(n)))
  rows = -(-n // cols)
  padded = np.zeros((rows * cols, h + 2, w + 2), bool)
  padded[:n, 1:-1, 1:-1] = fg
  mosaic = padded.reshape(rows, cols, h + 2, w + 2).transpose(
      0, 2, 1, 3).reshape(rows * (h + 2), cols * (w + 2))
  skel = morphology.skeletonize(mosaic)
  tiles = skel.reshape(rows, h + 2, cols, w + 2).transpose(0, 2, 1, 3)
  return tiles.reshape(rows * cols, -1).sum(-1)[:n]


def morphometrics(images):
  """float32 [N, 5] (FIELDS) of grey digits [N, H, W] or [N, H, W, 1]
  (uint8, or float in [0, 1])."""
  x = np.asarray(images)
  if x.ndim == 4 and x.shape[-1] == 1:
    x = x[..., 0]
  if x.ndim != 3 or not x.size:
    raise errors.InputError(
        f'morphometrics need grey digits [N, H, W] or [N, H, W, 1], got '
        f'shape {np.shape(images)}.')
  fg = x > (127 if x.dtype == np.uint8 else 0.5)
  n, h, w = fg.shape
  area = fg.sum((1, 2)).astype(np.float64)
  safe = np.maximum(area, 1.0)
  rows_on, cols_on = fg.any(2), fg.any(1)
  first = lambda m: np.argmax(m, 1)
  last = lambda m: m.shape[1] - 1 - np.argmax(m[:, ::-1], 1)
  height = np.where(area > 0, last(rows_on) - first(rows_on) + 1, 0)
  width = np.where(area > 0, last(cols_on) - first(cols_on) + 1, 0)
  yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
  cy = (fg * yy).sum((1, 2)) / safe
  cx = (fg * xx).sum((1, 2)) / safe
  dy = yy[None] - cy[:, None, None]
  dx = xx[None] - cx[:, None, None]
  mu11 = (fg * dx * dy).sum((1, 2))
  mu02 = (fg * dy * dy).sum((1, 2))
  slant = np.arctan(-mu11 / np.maximum(mu02, 1e-9))
  thickness = area / np.maximum(_skeleton_lengths(fg), 1)
  return np.stack([thickness, slant, width, height, area], -1).astype(
      np.float32)


def categories(metrics):
  """The captions' words as categories of morphometrics [N, >= 2]: int
  [N, 2] of (thickness 0 thin / 1 middling / 2 thick, slant 0 left /
  1 upright / 2 right)."""
  m = np.asarray(metrics, np.float64)
  thick = np.where(m[:, 0] < THIN, 0, np.where(m[:, 0] > THICK, 2, 1))
  slant = np.where(m[:, 1] < -SLANT, 0, np.where(m[:, 1] > SLANT, 2, 1))
  return np.stack([thick, slant], -1)


def vectors(labels, metrics):
  """float32 [N, 15] (VECTOR_FIELDS): the one-hot digit, then FIELDS."""
  labels = np.asarray(labels)
  if labels.min(initial=0) < 0 or labels.max(initial=0) > 9:
    raise errors.DataError(f'digit labels must be 0..9, got '
                           f'{labels.min()}..{labels.max()}.')
  return np.concatenate([np.eye(10, dtype=np.float32)[labels],
                         np.asarray(metrics, np.float32)], -1)


def captions(labels, metrics):
  """One caption per digit from its label and morphometrics."""
  thick_words = ('thin ', '', 'thick ')
  slant_words = (' slanting left', '', ' slanting right')
  cats = categories(metrics)
  return np.array([
      f'a {thick_words[t]}{DIGITS[int(label)]}{slant_words[s]}'
      for label, (t, s) in zip(np.asarray(labels), cats)])
