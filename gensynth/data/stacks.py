"""Training data for learned fusion: exposure stacks and multi-focus sets.

Real exposure stacks are folders of images (one folder per scene, one file
per exposure, all the same size). Synthetic sets are made from any
photograph:

- exposure stacks by simulated exposure: the photo is linearised, given a
  wider dynamic range by a smooth random gain field, exposed at K EV steps,
  clipped, passed through a random camera response (gamma), given noise and
  quantised to 8 bits;
- multi-focus sets by simulated defocus: K complementary regions with smooth,
  irregular boundaries (the argmax of K smooth random fields), each source
  sharp in its own region and Gaussian-blurred (random sigma) elsewhere; the
  target is the sharp photo.

`FusionBatches.batch(step)` is a pure function of (seed, step): each example
draws from its own generator seeded by (seed, step, global row), so any
process count sees the same data and a resumed run the same batches.
"""

import io as pyio
import os

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage import segmentation

from gensynth import errors
from gensynth.synth import io

TASKS = ('exposure', 'multifocus')
_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.tif', '.tiff', '.bmp')
# scikit-image's bundled colour photographs (no download needed).
BUNDLED_PHOTOS = ('astronaut', 'chelsea', 'coffee', 'rocket',
                  'immunohistochemistry', 'motorcycle_left')


def _to_uint8_rgb(x, what):
  x = np.asarray(x)
  if x.dtype != np.uint8:
    x = np.clip(np.round(x.astype(np.float32) * 255), 0, 255).astype(np.uint8)
  if x.ndim == 2:
    x = x[..., None]
  if x.shape[-1] == 1:
    x = np.repeat(x, 3, -1)
  if x.shape[-1] == 4:
    x = x[..., :3]
  if x.ndim != 3 or x.shape[-1] != 3:
    raise errors.DataError(f'{what}: expected an image, got shape {x.shape}.')
  return x


def bundled_photos():
  """scikit-image's bundled colour photographs as uint8 [H, W, 3] arrays."""
  from skimage import data  # pylint: disable=g-import-not-at-top
  out = []
  for name in BUNDLED_PHOTOS:
    img = (data.stereo_motorcycle()[0] if name == 'motorcycle_left' else
           getattr(data, name)())
    out.append(_to_uint8_rgb(img, f'skimage.data.{name}'))
  return out


def _image_files(folder, what):
  if not os.path.isdir(folder):
    raise errors.DataError(f'{what}: {folder!r} is not a directory.')
  files = sorted(f for f in os.listdir(folder)
                 if f.lower().endswith(_EXTENSIONS))
  if not files:
    raise errors.DataError(f'{what}: no images ({", ".join(_EXTENSIONS)}) in '
                           f'{folder!r}.')
  return [os.path.join(folder, f) for f in files]


def read_photos(folder):
  """Every image in `folder` (not recursive) as uint8 [H, W, 3]."""
  return [_to_uint8_rgb(io.read_image(p)[0], p)
          for p in _image_files(folder, 'photos')]


def scene_names(root):
  """Sub-folders of `root`, sorted: one exposure stack each."""
  if not os.path.isdir(root):
    raise errors.DataError(f'stacks: {root!r} is not a directory.')
  return sorted(d for d in os.listdir(root)
                if os.path.isdir(os.path.join(root, d)))


def read_stack(folder):
  """One exposure stack: the folder's images, uint8 [N, H, W, 3]."""
  imgs = [_to_uint8_rgb(io.read_image(p)[0], p)
          for p in _image_files(folder, 'stack')]
  shapes = {x.shape for x in imgs}
  if len(shapes) > 1:
    raise errors.DataError(f'stack {folder!r}: exposures differ in size '
                           f'{sorted(shapes)}.')
  if len(imgs) < 2:
    raise errors.DataError(f'stack {folder!r}: {len(imgs)} exposure; a stack '
                           'needs at least two.')
  return np.stack(imgs)


def select_scenes(root, include='', exclude=''):
  """Scene names under root: `include` (comma-separated; '' = all) minus
  `exclude`. Unknown names are an error naming the known ones."""
  known = scene_names(root)
  inc = [s for s in include.split(',') if s] if include else list(known)
  exc = [s for s in exclude.split(',') if s] if exclude else []
  unknown = sorted(set(inc + exc) - set(known))
  if unknown:
    raise errors.DataError(f'scenes {unknown} are not in {root!r}; it holds '
                           f'{known}.')
  return [s for s in inc if s not in exc]


def _halvings(x, min_side):
  """x [..., H, W, C] uint8 and its 2x2-mean halvings down to min_side."""
  out = [x]
  while min(out[-1].shape[-3:-1]) // 2 >= min_side:
    y = out[-1].astype(np.float32)
    h, w = y.shape[-3] // 2 * 2, y.shape[-2] // 2 * 2
    y = y[..., :h, :w, :]
    y = 0.25 * (y[..., 0::2, 0::2, :] + y[..., 1::2, 0::2, :] +
                y[..., 0::2, 1::2, :] + y[..., 1::2, 1::2, :])
    out.append(np.round(y).astype(np.uint8))
  return out


def _smooth_field(rng, hw, cells):
  """A smooth random field in [-1, 1]-ish: a coarse Gaussian grid upsampled."""
  coarse = rng.standard_normal((cells, cells)).astype(np.float32)
  zoom = (hw[0] / cells, hw[1] / cells)
  f = ndimage.zoom(coarse, zoom, order=3, mode='nearest')[:hw[0], :hw[1]]
  return np.pad(f, ((0, hw[0] - f.shape[0]), (0, hw[1] - f.shape[1])),
                mode='edge')


def simulate_exposures(rng, photo, k):
  """K simulated exposures [K, H, W, 3] float32 in [0, 1] of one photo."""
  x = photo.astype(np.float32) / 255.0
  linear = x**2.2
  hw = x.shape[:2]
  gain = np.exp(rng.uniform(0.5, 2.0) *
                _smooth_field(rng, hw, int(rng.integers(2, 6))))
  radiance = linear * gain[..., None]
  radiance /= max(float(np.median(radiance)), 1e-4)  # median at 1
  spacing = rng.uniform(1.0, 2.5)
  evs = (np.arange(k) - (k - 1) / 2) * spacing + rng.uniform(-2.5, -1.0)
  gamma = rng.uniform(1.8, 2.6)
  noise = rng.uniform(0.0, 0.01)
  out = []
  for ev in evs:
    v = np.clip(radiance * 2.0**ev, 0.0, 1.0)**(1.0 / gamma)
    v = v + noise * rng.standard_normal(v.shape).astype(np.float32)
    out.append(np.round(np.clip(v, 0, 1) * 255) / 255)
  return np.stack(out).astype(np.float32)


BLURS = ('gaussian', 'disc', 'mixed')
REGIONS = ('fields', 'segments')


def disc_kernel(radius):
  """A normalised disc (a lens's defocus blur, the circle of confusion) of
  `radius` pixels, its edge pixels weighted by their covered area."""
  half = int(np.ceil(radius))
  sub = (np.arange(4) + 0.5) / 4 - 0.5  # 4x4 samples per pixel
  t = np.arange(-half, half + 1)
  yy = (t[:, None, None, None] + sub[None, None, :, None])
  xx = (t[None, :, None, None] + sub[None, None, None, :])
  cover = ((yy**2 + xx**2) <= radius**2).mean((2, 3))
  return (cover / cover.sum()).astype(np.float32)


def _defocus(rng, x, blur, scale=1.0):
  """x [H, W, C] blurred as one out-of-focus source: Gaussian of sigma 1-4
  px, or a disc of radius 1.5-6 px, times `scale`; 'mixed' picks one of
  the two."""
  if blur == 'mixed':
    blur = ('gaussian', 'disc')[int(rng.integers(2))]
  if blur == 'gaussian':
    sigma = rng.uniform(1.0, 4.0) * scale
    return ndimage.gaussian_filter(x, (sigma, sigma, 0), mode='reflect')
  kernel = disc_kernel(rng.uniform(1.5, 6.0) * scale)
  return ndimage.convolve(x, kernel[..., None], mode='reflect')


def layered_defocus(x, masks, depth, focus, blur_layer):
  """One source of a layered defocus set: x [H, W, C] seen through K region
  masks [K, H, W] at depth ranks `depth` [K] (0 nearest), focused at the
  depth of region `focus`. The regions are composited from the farthest to
  the nearest (the farthest fills the frame); every other region's image
  and alpha are blurred together by blur_layer(x and alpha [H, W, C + 1],
  distance) with distance = |depth difference| >= 1."""
  c = x.shape[-1]
  v = None
  for j in np.argsort(-np.asarray(depth), kind='stable'):
    if j == focus:
      layer, alpha = x, masks[j][..., None]
    else:
      both = blur_layer(np.concatenate([x, masks[j][..., None]], -1),
                        abs(int(depth[j]) - int(depth[focus])))
      layer, alpha = both[..., :c], np.clip(both[..., c:], 0.0, 1.0)
    v = layer if v is None else alpha * layer + (1 - alpha) * v
  return v


def photo_segments(x):
  """Segment labels [H, W] (0..n-1) of a photo x [H, W, 3] in [0, 1]:
  Felzenszwalb's graph segmentation, its scale and smallest segment
  proportional to the image (about 20-50 segments at 128 px), so that
  segments are the photo's objects and surfaces at any crop size."""
  side = min(x.shape[:2])
  return segmentation.felzenszwalb(x, scale=0.8 * side, sigma=0.8,
                                   min_size=max(side * side // 400, 1))


def segment_regions(fields, labels):
  """Region index [H, W] of each pixel: the argmax over K of the fields
  [K, H, W] averaged over the pixel's segment (labels [H, W]), so regions
  are unions of segments shaped at large scale by the fields."""
  n = int(labels.max()) + 1
  flat = labels.ravel()
  count = np.bincount(flat, minlength=n)
  means = np.stack([np.bincount(flat, weights=f.ravel(), minlength=n)
                    for f in fields]) / np.maximum(count, 1)
  return np.argmax(means, axis=0)[labels]


def focus_regions(rng, x, k, regions='fields'):
  """Region index [H, W] in 0..K-1 of a photo x [H, W, 3] in [0, 1]: where
  each of K smooth random fields is largest ('fields'), or unions of the
  photo's segments ('segments', `segment_regions`). The same draws from rng
  either way."""
  cells = int(rng.integers(2, 5))
  fields = np.stack([_smooth_field(rng, x.shape[:2], cells)
                     for _ in range(k)])
  if regions == 'fields':
    return np.argmax(fields, axis=0)
  return segment_regions(fields, photo_segments(x))


def simulate_defocus(rng, photo, k, *, blur='gaussian', layered=False,
                     regions='fields'):
  """(sources [K, H, W, 3], sharp target [H, W, 3]) float32 in [0, 1]: each
  source in focus in its own region and blurred elsewhere (`blur`: one of
  BLURS).

  layered=False: source i is mask_i * photo + (1 - mask_i) * blur(photo),
  with soft complementary masks. layered=True: the K regions are objects at
  K random depths, and source i, focused at region i's depth, composites
  them from the farthest to the nearest, each layer blurred (image and
  alpha alike) by a defocus that grows with its depth distance from region
  i. A nearer out-of-focus object then spreads its blurred edge over the
  in-focus region behind it, so near a boundary no source is sharp (the
  defocus spread of real multi-focus pairs), while a farther one stays
  hidden behind the in-focus edge.

  regions='fields': the K regions are where each of K smooth random fields
  is largest (boundaries cross the picture anywhere). 'segments': each
  segment of the photo (`photo_segments`) goes whole to the region whose
  field is largest on average over it, so region boundaries run along the
  photo's own edges, as depth boundaries of real scenes run along objects'
  outlines. Both draw the same random numbers.
  """
  if blur not in BLURS:
    raise errors.ConfigError(f'defocus blur {blur!r}; expected one of '
                             f'{BLURS}.')
  if regions not in REGIONS:
    raise errors.ConfigError(f'defocus regions {regions!r}; expected one of '
                             f'{REGIONS}.')
  x = photo.astype(np.float32) / 255.0
  region = focus_regions(rng, x, k, regions)
  soft = rng.uniform(0.5, 3.0)  # boundary softness (pixels)
  masks = np.stack([ndimage.gaussian_filter((region == i).astype(np.float32),
                                            soft) for i in range(k)])
  masks /= np.maximum(masks.sum(0, keepdims=True), 1e-6)
  if layered:
    depth = rng.permutation(k)  # depth rank of each region, 0 nearest

    def blur_layer(rgba, distance):  # defocus grows with depth distance
      return _defocus(rng, rgba, blur, scale=float(distance) ** 0.5)

    def source(i):
      return layered_defocus(x, masks, depth, i, blur_layer)
  else:

    def source(i):
      m = masks[i][..., None]
      return m * x + (1 - m) * _defocus(rng, x, blur)

  # In order of i: each source draws its blurs from rng in turn.
  out = [np.round(np.clip(source(i), 0, 1) * 255) / 255 for i in range(k)]
  return np.stack(out).astype(np.float32), x


def jpeg_roundtrip(x, quality):
  """x [H, W, 3] float in [0, 1] written as a JPEG of `quality` (1-100;
  Pillow's standard tables and 4:2:0 chroma) and read back: float32
  [H, W, 3] in [0, 1]."""
  buf = pyio.BytesIO()
  Image.fromarray(np.uint8(np.round(np.clip(x, 0, 1) * 255))).save(
      buf, format='JPEG', quality=int(quality))
  return np.asarray(Image.open(pyio.BytesIO(buf.getvalue())).convert('RGB'),
                    np.float32) / 255.0


def check_jpeg_qualities(qualities, what='source_jpeg'):
  """() (lossless sources) or (lo, hi) with 1 <= lo <= hi <= 100."""
  q = tuple(qualities)
  if q and not (len(q) == 2 and all(isinstance(v, int) and
                                    not isinstance(v, bool) for v in q) and
                1 <= q[0] <= q[1] <= 100):
    raise errors.ConfigError(
        f'{what}={q}: expected () (lossless sources) or (lo, hi), two ints '
        'with 1 <= lo <= hi <= 100 (JPEG qualities).')
  return q


class FusionBatches:
  """Deterministic, resumable stream of process-local fusion batches.

  Each batch holds 'sources' [B, K, crop, crop, 3] (float32 in [0, 1]) and,
  for multi-focus, 'target' [B, crop, crop, 3]. K is drawn per step from
  `ks` (a few shapes, each compiled once).

  Args:
    task: 'exposure' or 'multifocus'.
    photos: uint8 [H, W, 3] photographs for synthetic sets.
    stacks: uint8 [N, H, W, 3] real exposure stacks (exposure only).
    real_fraction: share of examples drawn from `stacks` when there are any.
    defocus_blur: multi-focus sets' blur, one of BLURS.
    defocus_layers: multi-focus sets as depth layers with defocus spread
      (`simulate_defocus(layered=True)`) instead of blended masks.
    defocus_regions: multi-focus regions, one of REGIONS: 'fields' (random
      shapes) or 'segments' (unions of the photo's segments, so boundaries
      follow its edges; `simulate_defocus`).
    source_jpeg: () or (lo, hi): every source of an example written as a
      JPEG of one quality drawn from [lo, hi] and read back (real multi-focus
      pairs are camera JPEGs: their blurred regions carry block and ringing
      artifacts that a sharpness measure reads as detail). The target stays
      the lossless photo. Drawn after every other draw of the example, so
      () leaves the examples as they were.
  """

  def __init__(self, task, *, photos, stacks=(), crop, ks, global_batch_size,
               seed, real_fraction=0.5, process_index=0, process_count=1,
               defocus_blur='gaussian', defocus_layers=False,
               defocus_regions='fields', source_jpeg=()):
    if task not in TASKS:
      raise errors.ConfigError(f'task={task!r}; expected one of {TASKS}.')
    if global_batch_size <= 0 or global_batch_size % process_count:
      raise errors.DataError(
          f'global batch size {global_batch_size} must be positive and '
          f'divisible by the process count {process_count}.')
    if not ks or min(ks) < 2:
      raise errors.ConfigError(f'ks={tuple(ks)}: each K must be >= 2.')
    small = [p.shape for p in list(photos) + [s[0] for s in stacks]
             if min(p.shape[:2]) < crop]
    if small:
      raise errors.DataError(f'images {small} are smaller than the crop of '
                             f'{crop} pixels.')
    if not photos and not stacks:
      raise errors.DataError('no photographs and no stacks to train on.')
    if defocus_blur not in BLURS:
      raise errors.ConfigError(f'defocus_blur={defocus_blur!r}; expected one '
                               f'of {BLURS}.')
    if defocus_regions not in REGIONS:
      raise errors.ConfigError(f'defocus_regions={defocus_regions!r}; '
                               f'expected one of {REGIONS}.')
    self.defocus_blur = defocus_blur
    self.defocus_layers = bool(defocus_layers)
    self.defocus_regions = defocus_regions
    self.source_jpeg = check_jpeg_qualities(source_jpeg)
    self.task, self.crop, self.ks = task, crop, tuple(ks)
    self.seed, self.global_batch_size = seed, global_batch_size
    self.real_fraction = real_fraction if len(stacks) else 0.0
    # Each image at full size and halved until the crop just fits: scale
    # augmentation without resizing at every step.
    self._photos = [_halvings(p, crop) for p in photos]
    self._stacks = [_halvings(s, crop) for s in stacks]
    local = global_batch_size // process_count
    self._rows = range(process_index * local, (process_index + 1) * local)

  def _window(self, rng, shape):
    h, w = shape
    y = int(rng.integers(0, h - self.crop + 1))
    x = int(rng.integers(0, w - self.crop + 1))
    return (slice(y, y + self.crop), slice(x, x + self.crop))

  def _augment(self, rng, x):
    if rng.random() < 0.5:
      x = x[..., :, ::-1, :]
    if rng.random() < 0.5:
      x = x[..., ::-1, :, :]
    return x

  def example(self, step, row, k, *, stream=0):
    """Example `row` of batch `step` with K sources: a pure function of
    (seed, stream, step, row). Training uses stream 0; validation sets draw
    from another stream, so they never repeat a training example."""
    rng = np.random.default_rng([self.seed, stream, step, row])
    ex = self._example(rng, k)
    if self.source_jpeg:
      q = int(rng.integers(self.source_jpeg[0], self.source_jpeg[1] + 1))
      ex['sources'] = np.stack([jpeg_roundtrip(s, q) for s in ex['sources']])
    return ex

  def _example(self, rng, k):
    if self.task == 'exposure' and rng.random() < self.real_fraction:
      levels = self._stacks[int(rng.integers(len(self._stacks)))]
      stack = levels[int(rng.integers(len(levels)))]
      pick = np.sort(rng.choice(len(stack), size=min(k, len(stack)),
                                replace=False))
      if len(pick) < k:  # a stack shorter than K: repeat exposures
        pick = np.sort(rng.choice(len(stack), size=k, replace=True))
      win = self._window(rng, stack.shape[1:3])
      src = stack[pick][:, win[0], win[1]].astype(np.float32) / 255.0
      return {'sources': np.ascontiguousarray(self._augment(rng, src))}
    levels = self._photos[int(rng.integers(len(self._photos)))]
    photo = levels[int(rng.integers(len(levels)))]
    win = self._window(rng, photo.shape[:2])
    photo = np.ascontiguousarray(self._augment(rng, photo[win]))
    if self.task == 'exposure':
      return {'sources': simulate_exposures(rng, photo, k)}
    src, target = simulate_defocus(rng, photo, k, blur=self.defocus_blur,
                                   layered=self.defocus_layers,
                                   regions=self.defocus_regions)
    return {'sources': src, 'target': target}

  def num_sources(self, step):
    return self.ks[int(np.random.default_rng([self.seed, 1, step, 0]).integers(
        len(self.ks)))]

  def batch(self, step):
    k = self.num_sources(step)
    rows = [self.example(step, r, k) for r in self._rows]
    return {key: np.stack([r[key] for r in rows]) for key in rows[0]}

  def iterate(self, start_step=0):
    step = start_step
    while True:
      yield self.batch(step)
      step += 1
