"""Reader for the IDX format used by MNIST, Fashion-MNIST and KMNIST."""

import gzip
import os

import numpy as np

from gensynth import errors

# Magic number = 0x0000 | dtype code | number of dimensions.
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype('>i2'),
               0x0C: np.dtype('>i4'), 0x0D: np.dtype('>f4'),
               0x0E: np.dtype('>f8')}

# (images, labels) file stems per split; both `name` and `name.gz` are accepted.
_SPLIT_FILES = {
    'train': ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte'),
    'test': ('t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'),
}


def read_idx(path):
  """Reads one IDX file (optionally gzip-compressed) into a NumPy array."""
  opener = gzip.open if path.endswith('.gz') else open
  try:
    with opener(path, 'rb') as f:
      data = f.read()
  except (OSError, EOFError) as e:
    raise errors.DataError(f'{path}: cannot read IDX file ({e}).') from e
  if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
    raise errors.DataError(
        f'{path}: not an IDX file (magic number {data[:4].hex() or "missing"}; '
        'expected 0x0000 followed by a type code and the number of dimensions, '
        'e.g. 00000803 for images or 00000801 for labels).')
  dtype = np.dtype(_IDX_DTYPES[data[2]])
  ndim = data[3]
  header = 4 + 4 * ndim
  if len(data) < header:
    raise errors.DataError(f'{path}: truncated IDX header.')
  shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], 'big')
                for i in range(ndim))
  expected = int(np.prod(shape)) * dtype.itemsize
  if len(data) - header != expected:
    raise errors.DataError(
        f'{path}: truncated or oversized IDX file: header declares shape {shape} '
        f'({expected} bytes of data) but the file holds {len(data) - header}.')
  return np.frombuffer(data, dtype, offset=header).reshape(shape).astype(
      dtype.newbyteorder('='))


def _find(directory, stem):
  for name in (stem, stem + '.gz'):
    path = os.path.join(directory, name)
    if os.path.exists(path):
      return path
  raise errors.DataFileError(
      f'{directory}: missing IDX file {stem!r} (or {stem}.gz); an IDX directory '
      f'holds {", ".join(s for pair in _SPLIT_FILES.values() for s in pair)}.')


def load_idx_split(directory, split):
  """Returns (images uint8 [N, H, W, 1], labels int32 [N]) of an IDX directory."""
  if not os.path.isdir(directory):
    raise errors.DataFileError(
        f'IDX data directory {directory!r} does not exist.')
  if split not in _SPLIT_FILES:
    raise errors.DataError(f'IDX split {split!r} unknown; expected one of '
                           f'{sorted(_SPLIT_FILES)}.')
  img_path, lbl_path = (_find(directory, s) for s in _SPLIT_FILES[split])
  images, labels = read_idx(img_path), read_idx(lbl_path)
  if images.ndim != 3 or images.dtype != np.uint8:
    raise errors.DataError(
        f'{img_path}: expected uint8 images of shape [N, H, W], '
        f'got {images.dtype} {images.shape}.')
  if labels.shape != images.shape[:1]:
    raise errors.DataError(
        f'{lbl_path}: {labels.shape[0] if labels.ndim else 0} '
        f'labels for {images.shape[0]} images in {img_path}.')
  return images[..., None], labels.astype(np.int32)
