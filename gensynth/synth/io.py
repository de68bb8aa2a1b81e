"""Host-side image files for the CLIs: PNG/JPEG, 8/16-bit, grey/RGB/RGBA.

Kept at the edge: the ops themselves take arrays. Pillow reads and writes
everything except 16-bit colour PNGs, which it silently reduces to 8 bits;
those go through OpenCV (BGR order swapped to RGB).
"""

import os

import numpy as np
from PIL import Image

from gensynth import errors

_MODES = {'L': 1, 'LA': 2, 'RGB': 3, 'RGBA': 4}


def _png_depth_and_colour(path):
  """(bit depth, colour type) from a PNG's IHDR, or None if not a PNG."""
  with open(path, 'rb') as f:
    head = f.read(26)
  if len(head) < 26 or head[:8] != b'\x89PNG\r\n\x1a\n' or head[12:16] != b'IHDR':
    return None
  return head[24], head[25]


def _read_png16_colour(path):
  import cv2  # pylint: disable=g-import-not-at-top
  arr = cv2.imread(path, cv2.IMREAD_UNCHANGED)
  if arr is None or arr.dtype != np.uint16 or arr.ndim != 3:
    raise errors.InputError(f'{path}: not a readable 16-bit colour PNG.')
  if arr.shape[-1] == 2:  # grey + alpha -> RGBA, as for 8-bit LA
    arr = np.concatenate([np.repeat(arr[..., :1], 3, -1), arr[..., 1:]], -1)
  rgb = arr[..., 2::-1] if arr.shape[-1] >= 3 else arr
  if arr.shape[-1] == 4:
    rgb = np.concatenate([rgb, arr[..., 3:]], -1)
  return rgb.astype(np.float32) / 65535.0, 16


def read_image(path):
  """Returns (float32 [H, W, C] in [0, 1], bit depth 8 or 16).

  Grey stays 1 channel, RGB 3, RGBA 4 (LA becomes RGBA, palettes RGB(A)).
  16-bit PNGs keep all 16 bits, grey or colour.
  """
  if not os.path.isfile(path):
    raise errors.InputFileError(f'{path}: no such image file.')
  png = _png_depth_and_colour(path)
  if png is not None and png[0] == 16 and png[1] in (2, 4, 6):
    try:
      with Image.open(path) as im:
        im.load()  # the same truncation/corruption checks as 8-bit files
    except (OSError, SyntaxError, ValueError) as e:
      raise errors.InputError(f'{path}: not a readable image ({e}).') from e
    return _read_png16_colour(path)
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
    raise errors.InputError(f'{path}: not a readable image ({e}).') from e
  arr = arr[..., None] if arr.ndim == 2 else arr
  if arr.dtype == np.uint16:
    return arr.astype(np.float32) / 65535.0, 16
  return arr.astype(np.float32) / 255.0, 8


def write_image(path, image, *, bits=8):
  """Writes float [H, W, C] in [0, 1] (clipped) as PNG (8/16-bit) or JPEG."""
  ext = os.path.splitext(path)[1].lower()
  if ext not in ('.png', '.jpg', '.jpeg'):
    raise errors.InputError(f'{path}: output must end in .png, .jpg or .jpeg.')
  if bits not in (8, 16):
    raise errors.InputError(f'bits={bits}: expected 8 or 16.')
  arr = np.asarray(image, np.float32)
  if arr.ndim != 3 or arr.shape[-1] not in (1, 2, 3, 4) or not arr.size:
    raise errors.InputError(
        f'{path}: image of shape {arr.shape}; expected [H, W, C] '
        'with H, W >= 1 and C in 1..4.')
  if not np.all(np.isfinite(arr)):
    raise errors.InputError(
        f'{path}: the image holds NaN or Inf values; nothing '
        'written.')
  arr = np.clip(arr, 0.0, 1.0)
  c = arr.shape[-1]
  if ext != '.png' and (bits == 16 or c in (2, 4)):
    raise errors.InputError(
        f'{path}: JPEG holds 8-bit grey or RGB only; write a '
        '.png for 16-bit or alpha.')
  parent = os.path.dirname(os.path.abspath(path))
  if not os.path.isdir(parent):
    raise errors.InputFileError(f'{path}: directory {parent} does not exist.')
  if bits == 16:
    u16 = (arr * 65535).round().astype(np.uint16)
    if c == 1:
      Image.fromarray(u16[..., 0]).save(path)
      return
    import cv2  # pylint: disable=g-import-not-at-top
    if c == 2:  # grey + alpha -> RGBA
      u16 = np.concatenate([np.repeat(u16[..., :1], 3, -1), u16[..., 1:]], -1)
    bgr = u16[..., 2::-1]
    if u16.shape[-1] == 4:
      bgr = np.concatenate([bgr, u16[..., 3:]], -1)
    if not cv2.imwrite(path, np.ascontiguousarray(bgr)):
      raise errors.InputError(f'{path}: could not be written.')
    return
  u8 = (arr * 255).round().astype(np.uint8)
  # PNG: zlib level 1, OpenCV's default: the same pixels as Pillow's level 6,
  # written faster in a larger file (`--bench=cli_wall_time`).
  Image.fromarray(u8[..., 0] if c == 1 else u8).save(
      path, **({'compress_level': 1} if ext == '.png' else {}))


def output_bits(flag, input_bits, path):
  """Bit depth for an output file: flag '8' or '16', or 'auto' = 16 for a PNG
  made from any 16-bit input, else 8."""
  if flag != 'auto':
    return int(flag)
  return 16 if max(input_bits) == 16 and path.lower().endswith('.png') else 8


def harmonise_channels(images):
  """Brings grey (1), grey+alpha (2), RGB (3) and RGBA (4) images to one
  layout: colour if any image has colour, alpha if any has alpha (opaque
  where an image had none). Returns a list of arrays, dtypes kept."""
  if not images:
    raise errors.InputError('images: no images given.')
  arrays = []
  for i, x in enumerate(images):
    x = np.asarray(x)
    if x.ndim < 3 or x.shape[-1] not in (1, 2, 3, 4):
      raise errors.InputError(
          f'images[{i}]: shape {x.shape}; expected [..., H, W, '
          'C] with C = 1 (grey), 2 (grey+alpha), 3 (RGB) or 4 '
          '(RGBA).')
    if not (np.issubdtype(x.dtype, np.integer) or
            np.issubdtype(x.dtype, np.floating)) or x.dtype == np.bool_:
      raise errors.InputError(
          f'images[{i}]: dtype {x.dtype}; expected integer or '
          'float pixels.')
    if np.issubdtype(x.dtype, np.floating) and not np.all(np.isfinite(x)):
      raise errors.InputError(f'images[{i}]: holds NaN or Inf values; expected '
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
