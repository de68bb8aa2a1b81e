"""Morpho-MNIST-style morphometrics of digits, as vectors and as captions.

After Castro et al., "Morpho-MNIST" (2019): each grey digit is binarised at
half intensity and measured with array ops over the whole set at once:

  thickness  area / skeleton length (pixels); the skeleton comes from one
             scikit-image `skeletonize` call on a mosaic of every digit
  slant      shear of the digit, atan(-mu11 / mu02) from its central moments
             (radians; > 0 leans right, top to the right of the bottom)
  width, height  of the bounding box (pixels)
  area       foreground pixels

Captions name the digit and, when it is clearly thin or thick, slanted or
upright, those too: "a thick seven slanting right", "a thin two", "a four".
"""

import numpy as np

from gensynth import errors

FIELDS = ('thickness', 'slant', 'width', 'height', 'area')
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


def captions(labels, metrics):
  """One caption per digit from its label and morphometrics."""
  out = []
  for label, (thick, slant, *_) in zip(np.asarray(labels), metrics):
    words = ['a']
    if thick < THIN:
      words.append('thin')
    elif thick > THICK:
      words.append('thick')
    words.append(DIGITS[int(label)])
    if slant > SLANT:
      words.append('slanting right')
    elif slant < -SLANT:
      words.append('slanting left')
    out.append(' '.join(words))
  return np.array(out)
