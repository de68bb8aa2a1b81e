"""A folder of images with one subfolder per class (ImageNet-style layout)."""

import os

import numpy as np
from PIL import Image

from gensynth import errors

_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.gif', '.tif', '.tiff', '.webp')


def load_image_folder(directory, *, return_paths=False):
  """Returns (images uint8 [N, H, W, C], labels int32 [N], class_names), and
  with return_paths the files' paths relative to `directory` ('class/name').

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
  images, labels, paths, first = [], [], [], None
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
      paths.append(f'{name}/{fname}')
  if not images:
    raise errors.DataError(
        f'{directory}: no image files ({", ".join(_EXTENSIONS)}) '
        'in any class subfolder.')
  out = np.stack(images), np.asarray(labels, np.int32), classes
  return out + (paths,) if return_paths else out


def read_conditions(path, names, kind):
  """Conditions for the files `names` ('class/file' paths) from a JSONL or
  CSV file.

  JSONL: one object per line, {"file": ..., "caption": "..."} for text or
  {"file": ..., "vector": [...]} for vectors. CSV: a header row; column
  `file`, then `caption` (text) or one column per vector component. A file
  is matched by its 'class/name' path or, if unique, its bare name.

  Returns:
    str [N] captions or float32 [N, D] vectors, and the vector's field names
    (None for text).
  """
  import csv  # pylint: disable=g-import-not-at-top
  import json  # pylint: disable=g-import-not-at-top
  if not os.path.isfile(path):
    raise errors.DataFileError(f'conditions file {path!r} does not exist.')
  field = 'caption' if kind == 'text' else 'vector'
  table, fields = {}, None
  with open(path, newline='') as f:
    if path.lower().endswith(('.jsonl', '.json')):
      for n, line in enumerate(f, 1):
        if not line.strip():
          continue
        try:
          rec = json.loads(line)
        except json.JSONDecodeError as e:
          raise errors.DataError(f'{path}:{n}: not a JSON object ({e}).') \
              from None
        if not isinstance(rec, dict) or 'file' not in rec or field not in rec:
          raise errors.DataError(
              f'{path}:{n}: expected {{"file": ..., "{field}": ...}}.')
        table[str(rec['file'])] = rec[field]
    elif path.lower().endswith('.csv'):
      reader = csv.DictReader(f)
      if not reader.fieldnames or 'file' not in reader.fieldnames:
        raise errors.DataError(f'{path}: the CSV header needs a "file" '
                               'column.')
      fields = [c for c in reader.fieldnames if c != 'file']
      if kind == 'text' and 'caption' not in fields:
        raise errors.DataError(f'{path}: the CSV header needs a "caption" '
                               'column for text conditions.')
      for row in reader:
        if kind == 'text':
          table[row['file']] = row['caption']
        else:
          try:
            table[row['file']] = [float(row[c]) for c in fields]
          except (TypeError, ValueError):
            raise errors.DataError(
                f'{path}: row for {row["file"]!r} has a non-number in '
                f'{fields}.') from None
    else:
      raise errors.DataFileError(
          f'conditions file {path!r}: expected a .jsonl or .csv file.')
  bare = {}
  for key in table:
    bare.setdefault(os.path.basename(key), []).append(key)
  out = []
  for name in names:
    key = name if name in table else None
    if key is None and len(bare.get(os.path.basename(name), ())) == 1:
      key = bare[os.path.basename(name)][0]
    if key is None:
      raise errors.DataError(f'{path}: no {field} for image {name!r}.')
    out.append(table[key])
  if kind == 'text':
    return np.array([str(c) for c in out]), None
  try:
    vectors = np.asarray(out, np.float32)
  except ValueError:
    raise errors.DataError(f'{path}: vectors of different lengths.') from None
  if vectors.ndim != 2 or not np.all(np.isfinite(vectors)):
    raise errors.DataError(f'{path}: vectors must be finite and of one '
                           'length.')
  return vectors, fields
