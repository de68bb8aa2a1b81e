"""Host-side image files for the CLIs: PNG/JPEG, 8/16-bit, grey/RGB/RGBA.

Kept at the edge: the ops themselves take arrays.
"""

import os

import numpy as np
from PIL import Image

_MODES = {'L': 1, 'LA': 2, 'RGB': 3, 'RGBA': 4}


def read_image(path):
  """Returns (float32 [H, W, C] in [0, 1], bit depth 8 or 16).

  Grey stays 1 channel, RGB 3, RGBA 4 (LA becomes RGBA, palettes RGB(A)).
  """
  if not os.path.isfile(path):
    raise FileNotFoundError(f'{path}: no such image file.')
  try:
    with Image.open(path) as im:
      im.load()
      mode = im.mode
      if mode in ('I;16', 'I;16B', 'I;16L', 'I'):
        arr = np.asarray(im, np.uint32 if mode == 'I' else np.uint16)
        return (arr.astype(np.float32) / 65535.0)[..., None], 16
      if mode == 'P':
        im = im.convert('RGBA' if 'transparency' in im.info else 'RGB')
      elif mode == 'LA':
        im = im.convert('RGBA')
      elif mode not in _MODES:
        im = im.convert('RGB')
      arr = np.asarray(im)
  except (OSError, SyntaxError, ValueError) as e:
    raise ValueError(f'{path}: not a readable image ({e}).') from e
  arr = arr[..., None] if arr.ndim == 2 else arr
  if arr.dtype == np.uint16:
    return arr.astype(np.float32) / 65535.0, 16
  return arr.astype(np.float32) / 255.0, 8


def write_image(path, image, *, bits=8):
  """Writes float [H, W, C] in [0, 1] (clipped) as PNG (8/16-bit) or JPEG."""
  ext = os.path.splitext(path)[1].lower()
  if ext not in ('.png', '.jpg', '.jpeg'):
    raise ValueError(f'{path}: output must end in .png, .jpg or .jpeg.')
  if bits not in (8, 16):
    raise ValueError(f'bits={bits}: expected 8 or 16.')
  arr = np.clip(np.asarray(image, np.float32), 0.0, 1.0)
  c = arr.shape[-1]
  if ext != '.png' and (bits == 16 or c in (2, 4)):
    raise ValueError(f'{path}: JPEG holds 8-bit grey or RGB only; write a '
                     '.png for 16-bit or alpha.')
  parent = os.path.dirname(os.path.abspath(path))
  if not os.path.isdir(parent):
    raise FileNotFoundError(f'{path}: directory {parent} does not exist.')
  if bits == 16:
    if c != 1:
      raise ValueError(f'{path}: 16-bit output is written for grey images '
                       f'only; this image has {c} channels (use --bits=8).')
    Image.fromarray((arr[..., 0] * 65535).round().astype(np.uint16)).save(path)
    return
  u8 = (arr * 255).round().astype(np.uint8)
  Image.fromarray(u8[..., 0] if c == 1 else u8).save(path)


def harmonise_channels(images):
  """Brings grey (1), grey+alpha (2), RGB (3) and RGBA (4) images to one
  layout: colour if any image has colour, alpha if any has alpha (opaque
  where an image had none). Returns a list of arrays, dtypes kept."""
  if not images:
    raise ValueError('images: no images given.')
  arrays = []
  for i, x in enumerate(images):
    x = np.asarray(x)
    if x.ndim < 3 or x.shape[-1] not in (1, 2, 3, 4):
      raise ValueError(f'images[{i}]: shape {x.shape}; expected [..., H, W, '
                       'C] with C = 1 (grey), 2 (grey+alpha), 3 (RGB) or 4 '
                       '(RGBA).')
    if not (np.issubdtype(x.dtype, np.integer) or
            np.issubdtype(x.dtype, np.floating)) or x.dtype == np.bool_:
      raise ValueError(f'images[{i}]: dtype {x.dtype}; expected integer or '
                       'float pixels.')
    if np.issubdtype(x.dtype, np.floating) and not np.all(np.isfinite(x)):
      raise ValueError(f'images[{i}]: holds NaN or Inf values; expected '
                       'finite pixels.')
    arrays.append(x)
  colour = any(x.shape[-1] >= 3 for x in arrays)
  alpha = any(x.shape[-1] in (2, 4) for x in arrays)
  out = []
  for x in arrays:
    c = x.shape[-1]
    col = x[..., :3] if c >= 3 else x[..., :1]
    if colour and c < 3:
      col = np.repeat(col, 3, -1)
    if alpha:
      opaque = np.ones_like(x[..., :1]) * (
          np.iinfo(x.dtype).max if np.issubdtype(x.dtype, np.integer) else 1)
      col = np.concatenate([col, x[..., -1:] if c in (2, 4) else opaque], -1)
    out.append(col)
  return out
