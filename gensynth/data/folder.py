"""A folder of images with one subfolder per class (ImageNet-style layout)."""

import os

import numpy as np
from PIL import Image

from gensynth import errors

_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.gif', '.tif', '.tiff', '.webp')


def load_image_folder(directory):
  """Returns (images uint8 [N, H, W, C], labels int32 [N], class_names).

  Classes are the sorted subfolder names; files are read in sorted order so the
  result is deterministic. All images must share one size and channel count.
  """
  if not os.path.isdir(directory):
    raise errors.DataFileError(f'image folder {directory!r} does not exist.')
  classes = sorted(d for d in os.listdir(directory)
                   if os.path.isdir(os.path.join(directory, d)))
  if not classes:
    raise errors.DataError(f'{directory}: no class subfolders; expected '
                           f'{directory}/<class_name>/<image files>.')
  images, labels, first = [], [], None
  for label, name in enumerate(classes):
    sub = os.path.join(directory, name)
    for fname in sorted(os.listdir(sub)):
      if not fname.lower().endswith(_EXTENSIONS):
        continue
      path = os.path.join(sub, fname)
      try:
        with Image.open(path) as im:
          arr = np.asarray(im)
      except (OSError, SyntaxError, ValueError) as e:
        raise errors.DataError(f'{path}: cannot decode image ({e}).') from e
      if arr.dtype != np.uint8:
        raise errors.DataError(
            f'{path}: expected an 8-bit image, got {arr.dtype}.')
      arr = arr[..., None] if arr.ndim == 2 else arr
      if first is None:
        first = (path, arr.shape)
      elif arr.shape != first[1]:
        raise errors.DataError(
            f'{path}: shape {arr.shape} (H, W, C) differs from {first[1]} of '
            f'{first[0]}; all images in a folder dataset must share size and '
            'channel count (convert or resize them first).')
      images.append(arr)
      labels.append(label)
  if not images:
    raise errors.DataError(
        f'{directory}: no image files ({", ".join(_EXTENSIONS)}) '
        'in any class subfolder.')
  return np.stack(images), np.asarray(labels, np.int32), classes
