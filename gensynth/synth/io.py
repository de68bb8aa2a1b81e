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
  """Brings grey/RGB/RGBA images to one channel count (the largest)."""
  target = max(x.shape[-1] for x in images)
  out = []
  for x in images:
    c = x.shape[-1]
    if c == target:
      out.append(x)
      continue
    rgb = np.repeat(x[..., :1], 3, -1) if c in (1, 2) else x[..., :3]
    if target == 4:
      alpha = x[..., -1:] if c in (2, 4) else np.ones_like(x[..., :1])
      rgb = np.concatenate([rgb, alpha], -1)
    out.append(rgb)
  return out
