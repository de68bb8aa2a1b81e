"""Concatenation, grids and panoramas.

hconcat puts images side by side (a horizontal strip), vconcat stacks them
top to bottom. Sizes that differ along the joined edge are handled by
`policy`: 'pad' (fill value, placed by `align`), 'resize' (to the largest
extent, keeping aspect ratio) or 'error'. `panorama` registers and blends
overlapping photos (see its docstring).
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from gensynth.synth import blend as blend_lib
from gensynth.synth import checks
from gensynth.synth import homography
from gensynth.synth import keypoints
from gensynth.synth import warp

POLICIES = ('pad', 'resize', 'error')
ALIGNS = ('start', 'center', 'end')


def _fit(x, size, axis, *, policy, align, fill):
  """Makes x's extent along `axis` (-3 or -2) equal to size."""
  n = x.shape[axis]
  if n == size:
    return x
  if policy == 'resize':
    other = -2 if axis == -3 else -3
    scale = size / n
    shape = list(x.shape)
    shape[axis] = size
    shape[other] = max(1, round(x.shape[other] * scale))
    return jax.image.resize(x, shape, 'linear')
  extra = size - n
  before = {'start': 0, 'center': extra // 2, 'end': extra}[align]
  pad = [(0, 0)] * x.ndim
  pad[axis] = (before, extra - before)
  return jnp.pad(x, pad, constant_values=fill)


def _check(images, policy, align, spacing, fill):
  if not np.isfinite(fill):
    raise ValueError(f'fill={fill}: expected a finite pixel value.')
  if policy not in POLICIES:
    raise ValueError(f'policy={policy!r}; expected one of {POLICIES}.')
  if align not in ALIGNS:
    raise ValueError(f'align={align!r}; expected one of {ALIGNS}.')
  if spacing < 0:
    raise ValueError(f'spacing={spacing} must be >= 0.')
  if not images:
    raise ValueError('images: nothing to concatenate.')
  xs = [checks.image(x, f'images[{i}]') for i, x in enumerate(images)]
  lead = {x.shape[:-3] + x.shape[-1:] for x in xs}
  if len(lead) > 1:
    raise ValueError(f'images: batch shapes and channel counts must agree, '
                     f'got {[tuple(x.shape) for x in xs]}.')
  return xs


def _concat(images, axis, *, policy, align, spacing, fill):
  cross = -2 if axis == -3 else -3  # the edge that must match
  xs = _check(images, policy, align, spacing, fill)
  size = max(x.shape[cross] for x in xs)
  if policy == 'error' and any(x.shape[cross] != size for x in xs):
    side = 'heights' if cross == -3 else 'widths'
    raise ValueError(f'images: {side} differ ({[x.shape[cross] for x in xs]}) '
                     "and policy='error'; use policy='pad' or 'resize'.")
  xs = [_fit(x, size, cross, policy=policy, align=align, fill=fill) for x in xs]
  if spacing:
    gap_shape = list(xs[0].shape)
    gap_shape[axis] = spacing
    gap = jnp.full(gap_shape, fill, xs[0].dtype)
    xs = [p for x in xs for p in (x, gap)][:-1]
  return jnp.concatenate(xs, axis=axis)


def hconcat(images, *, policy='error', align='center', spacing=0, fill=0.0):
  """Side by side: [..., H_i, W_i, C] -> [..., H, sum W_i (+ gaps), C]."""
  return _concat(images, -2, policy=policy, align=align, spacing=spacing,
                 fill=fill)


def vconcat(images, *, policy='error', align='center', spacing=0, fill=0.0):
  """Top to bottom: [..., H_i, W_i, C] -> [..., sum H_i (+ gaps), W, C]."""
  return _concat(images, -3, policy=policy, align=align, spacing=spacing,
                 fill=fill)


def grid(images, *, cols, policy='pad', align='center', spacing=0, fill=0.0):
  """Row-major grid of N images with `cols` columns; cells share one size.

  With policy='pad' each cell is padded to the largest height and width; the
  last row is completed with empty (fill) cells.
  """
  xs = _check(images, policy, align, spacing, fill)
  if cols < 1:
    raise ValueError(f'cols={cols} must be >= 1.')
  h = max(x.shape[-3] for x in xs)
  w = max(x.shape[-2] for x in xs)
  if policy == 'error' and any(x.shape[-3:-1] != (h, w) for x in xs):
    raise ValueError(f'images: sizes differ ({[x.shape[-3:-1] for x in xs]}) '
                     "and policy='error'.")
  cells = []
  for x in xs:
    if policy == 'resize':
      x = jax.image.resize(x, x.shape[:-3] + (h, w, x.shape[-1]), 'linear')
    cells.append(_fit(_fit(x, h, -3, policy='pad', align=align, fill=fill), w,
                      -2, policy='pad', align=align, fill=fill))
  while len(cells) % cols:
    cells.append(jnp.full_like(cells[0], fill))
  rows = [hconcat(cells[i:i + cols], spacing=spacing, fill=fill)
          for i in range(0, len(cells), cols)]
  return vconcat(rows, spacing=spacing, fill=fill)


# --------------------------------------------------------------------------
# Panoramas
# --------------------------------------------------------------------------


@dataclasses.dataclass
class Panorama:
  image: np.ndarray  # [Hc, Wc, C] float
  valid: np.ndarray  # [Hc, Wc] bool, pixels covered by some input
  homographies: list  # per input, 3x3 input -> canvas
  pairs: list  # per registered pair: i, j, matches, inliers, rmse
  reference: int  # input whose frame the canvas extends


def detect_orb(image, *, num_keypoints=2000, registration_pixels=0.6e6):
  """Host-side ORB keypoints (x, y at full resolution) and bool descriptors."""
  from skimage import feature  # pylint: disable=g-import-not-at-top
  from skimage import transform  # pylint: disable=g-import-not-at-top
  img = np.asarray(image, np.float32)
  grey = img[..., :3].mean(-1) if img.shape[-1] >= 3 else img[..., 0]
  scale = min(1.0, float(np.sqrt(registration_pixels / grey.size)))
  small = transform.rescale(grey, scale, anti_aliasing=True) if scale < 1 \
      else grey
  orb = feature.ORB(n_keypoints=num_keypoints, fast_threshold=0.05)
  try:
    orb.detect_and_extract(small)
  except RuntimeError:  # skimage raises when it finds no keypoint at all
    return np.zeros((0, 2), np.float32), np.zeros((0, 256), bool)
  xy = orb.keypoints[:, ::-1] / scale
  return xy.astype(np.float32), orb.descriptors.astype(bool)


@functools.partial(jax.jit, static_argnames=('ratio', 'threshold',
                                             'num_hypotheses'))
def _register_pair(key, xy_a, desc_a, ok_a, xy_b, desc_b, ok_b, *, ratio,
                   threshold, num_hypotheses):
  idx, valid = homography.match(desc_a, desc_b, binary=True, ratio=ratio,
                                valid_a=ok_a, valid_b=ok_b)
  h, inliers, rmse = homography.ransac_homography(
      key, xy_a, xy_b[idx], valid, num_hypotheses=num_hypotheses,
      threshold=threshold)
  return h, jnp.sum(valid), jnp.sum(inliers), rmse


def _pad(xy, desc, n):
  k = min(len(xy), n)
  pxy = np.zeros((n, 2), np.float32)
  pd = np.zeros((n, desc.shape[1] if desc.ndim == 2 else 256), np.float32)
  ok = np.zeros(n, bool)
  pxy[:k], pd[:k], ok[:k] = xy[:k], desc[:k], True
  return pxy, pd, ok


def _spanning_tree(n, inliers, min_inliers):
  """Max spanning tree over inlier counts from the best-connected image."""
  w = np.where(inliers >= min_inliers, inliers, 0)
  ref = int(np.argmax(w.sum(1)))
  parent, done = {ref: None}, {ref}
  while len(done) < n:
    cand = [(w[i, j], i, j) for i in done for j in range(n)
            if j not in done and w[i, j] > 0]
    if not cand:
      lost = sorted(set(range(n)) - done)
      j = lost[0]
      best = int(np.argmax(inliers[j]))
      raise ValueError(
          f'image {j} does not overlap the others: its best pair is with image '
          f'{best} with {int(inliers[j, best])} RANSAC inliers (need '
          f'{min_inliers}). Unplaced images: {lost}.')
    _, i, j = max(cand)
    parent[j] = i
    done.add(j)
  return ref, parent


def _gains(warped, valid, sigma_n=10.0 / 255, sigma_g=0.1):
  """Per-image gain compensation (Brown & Lowe 2007) from overlap means."""
  n = len(warped)
  grey = np.asarray(jnp.mean(warped, -1))
  v = np.asarray(valid[..., 0]) > 0
  a = np.zeros((n, n))
  b = np.zeros(n)
  for i in range(n):
    for j in range(n):
      if i == j:
        continue
      ov = v[i] & v[j]
      cnt = ov.sum()
      if not cnt:
        continue
      mi, mj = grey[i][ov].mean(), grey[j][ov].mean()
      a[i, i] += cnt * (mi * mi / sigma_n**2 + 1 / sigma_g**2)
      a[i, j] -= cnt * mi * mj / sigma_n**2
      b[i] += cnt / sigma_g**2
  isolated = np.diag(a) == 0  # no overlap: keep gain 1
  a[isolated, isolated] = 1.0
  b[isolated] = 1.0
  return np.linalg.solve(a, b)


_detect = jax.jit(keypoints.detect_and_describe,
                  static_argnames=('num_keypoints',))


def _features(image, detector, num_keypoints):
  """(xy [K, 2], descriptors [K, 256] float 0/1, valid [K]) of one image."""
  if detector == 'harris':
    xy, desc, ok, _ = _detect(image, num_keypoints=num_keypoints)
    return xy, desc.astype(jnp.float32), ok
  return _pad(*detect_orb(image, num_keypoints=num_keypoints), num_keypoints)


def panorama(images, *, key, detector='harris', num_keypoints=2000,
             ratio=0.8, ransac_threshold=3.0, num_hypotheses=2048,
             min_inliers=20, blend='multiband', levels=5, feather_radius=32,
             gain_compensation=True, max_canvas_pixels=60e6):
  """Stitches 2..N overlapping photos (any order) into one panorama.

  Keypoints are oriented Harris corners with rBRIEF descriptors found on
  device (`keypoints.detect_and_describe`, at ~0.6 Mpx), or scikit-image's
  ORB on the host with detector='orb'; matching, RANSAC, warping and blending
  run on the default JAX device. Images are placed by a maximum spanning tree
  over pairwise inlier counts, rooted at the best-connected image, whose frame
  the canvas extends.

  Args:
    images: list of [H, W, C] float images in [0, 1] (same C).
    key: PRNG key for RANSAC.
    detector: 'harris' (on device) or 'orb' (scikit-image, host; slower).
    num_keypoints, ratio, ransac_threshold, num_hypotheses, min_inliers:
      registration settings (threshold in full-resolution pixels).
    blend: 'multiband', 'feather' or 'none' (last image on top).
    levels: multi-band levels; feather_radius: seam cross-fade in pixels.
    gain_compensation: equalise exposure between images first.
    max_canvas_pixels: refuse canvases larger than this (a bad homography can
      imply one of many gigapixels).

  Returns:
    Panorama.
  """
  if len(images) < 2:
    raise ValueError(f'panorama needs at least 2 images, got {len(images)}.')
  if detector not in ('harris', 'orb'):
    raise ValueError(f"detector={detector!r}; expected 'harris' or 'orb'.")
  if blend not in ('multiband', 'feather', 'none'):
    raise ValueError(f"blend={blend!r}; expected 'multiband', 'feather' or "
                     "'none'.")
  imgs = [np.asarray(checks.image(jnp.asarray(x), f'images[{i}]', min_hw=32))
          for i, x in enumerate(images)]
  if len({x.shape[-1] for x in imgs}) > 1:
    raise ValueError('images: channel counts differ '
                     f'({[x.shape[-1] for x in imgs]}).')
  n = len(imgs)
  feats = [_features(x, detector, num_keypoints) for x in imgs]
  hs, inl = {}, np.zeros((n, n), int)
  pairs = []
  for i in range(n):
    for j in range(i + 1, n):
      h, m, k, rmse = _register_pair(
          jax.random.fold_in(key, i * n + j), *feats[i], *feats[j],
          ratio=ratio, threshold=ransac_threshold,
          num_hypotheses=num_hypotheses)
      hs[(i, j)] = np.asarray(h, np.float64)
      inl[i, j] = inl[j, i] = int(k)
      pairs.append({'i': i, 'j': j, 'matches': int(m), 'inliers': int(k),
                    'rmse_px': float(rmse)})
  ref, parent = _spanning_tree(n, inl, min_inliers)
  to_ref = {ref: np.eye(3)}
  pending = [c for c in parent if parent[c] is not None]
  while pending:
    for c in list(pending):
      p = parent[c]
      if p in to_ref:
        h_cp = np.linalg.inv(hs[(p, c)]) if p < c else hs[(c, p)]
        to_ref[c] = to_ref[p] @ h_cp
        pending.remove(c)
  corners = []
  for i, x in enumerate(imgs):
    h, w = x.shape[:2]
    c = np.array([[0, 0], [w - 1, 0], [0, h - 1], [w - 1, h - 1]], np.float64)
    z = c @ to_ref[i][2, :2] + to_ref[i][2, 2]
    if np.any(z <= 0):
      raise ValueError(f'image {i}: its homography sends a corner behind the '
                       'camera; the registration is wrong (check overlaps).')
    corners.append((c @ to_ref[i][:2, :2].T + to_ref[i][:2, 2]) / z[:, None])
  allc = np.concatenate(corners)
  x0, y0 = np.floor(allc.min(0))
  x1, y1 = np.ceil(allc.max(0))
  ow, oh = int(x1 - x0 + 1), int(y1 - y0 + 1)
  if ow * oh > max_canvas_pixels:
    worst = int(np.argmax([np.ptp(c, 0).prod() for c in corners]))
    raise ValueError(
        f'the panorama canvas would be {oh}x{ow} = {ow * oh / 1e6:.0f} Mpx '
        f'(limit {max_canvas_pixels / 1e6:.0f} Mpx); image {worst} is '
        'stretched the most, so its registration is likely wrong.')
  warp_fn = jax.jit(warp.warp_perspective, static_argnames='out_hw')
  shift = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1.0]])
  outs = [warp_fn(x, (shift @ to_ref[i]).astype(np.float32), (oh, ow))
          for i, x in enumerate(imgs)]
  warped = jnp.stack([o[0] for o in outs])
  valid = jnp.stack([o[1] for o in outs])
  if gain_compensation:
    g = _gains(warped, valid)
    warped = warped * jnp.asarray(g, warped.dtype).reshape(-1, 1, 1, 1)
  out = _composite(warped, valid, blend=blend, levels=levels,
                   feather_radius=feather_radius)
  cover = jnp.any(valid > 0, axis=0)[..., 0]
  out = jnp.where(cover[..., None], out, 0.0)
  return Panorama(np.asarray(out), np.asarray(cover),
                  [shift @ to_ref[i] for i in range(n)], pairs, ref)


@functools.partial(jax.jit, static_argnames=('blend', 'levels',
                                             'feather_radius'))
def _composite(warped, valid, *, blend, levels, feather_radius):
  """Seam blending of warped images [N, H, W, C] with validity [N, H, W, 1]."""
  n = warped.shape[0]
  if blend == 'none':
    out = warped[0]
    for k in range(1, n):
      out = jnp.where(valid[k] > 0, warped[k], out)
  else:
    masks = blend_lib.feather_masks(valid, radius=feather_radius)
    if blend == 'multiband':
      out = blend_lib.multiband_blend(warped, masks, levels=levels)
    elif blend == 'feather':
      out = checks.sum_leading(warped * masks)
    else:
      raise ValueError(f"blend={blend!r}; expected 'multiband', 'feather' or "
                       "'none'.")
  return out
