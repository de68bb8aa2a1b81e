"""Panoramas: registration and blending of overlapping photos.

`stitch(images, key=...)` runs six named stages, each usable alone:

1. detect: keypoints and binary descriptors per image (`detect`).
2. match: descriptor matching and RANSAC homographies for every pair
   (`match`).
3. order: a maximum spanning tree over pairwise inlier counts, rooted at the
   best-connected image (`order`).
4. estimate: every image's homography into the root's frame, and the canvas
   that holds them all (`estimate`, `canvas`).
5. compensate: per-image exposure gains over the overlaps
   (`gain_factors`, Brown & Lowe 2007).
6. render: warp, compensate and blend on the canvas in one jitted function
   (`render`).

Matching, RANSAC, warping and blending run on the default JAX device; only
the small graph work (order, estimate) runs on the host.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from gensynth import errors
from gensynth.synth import blend as blend_lib
from gensynth.synth import checks
from gensynth.synth import compiled
from gensynth.synth import features
from gensynth.synth import homography
from gensynth.synth import keypoints
from gensynth.synth import warp
from gensynth.synth import xla_hints

DETECTORS = ('harris', 'orb')
BLENDS = ('multiband', 'feather', 'none')


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


# compiled.jit: jax.jit that, with the trace cache on (the launch scripts),
# loads the traced stage instead of tracing it in every process.
@functools.partial(compiled.jit, static_argnames=('num_keypoints',))
def _detect(image, *, num_keypoints):
  xy, desc, ok, _ = keypoints.detect_and_describe(
      image, num_keypoints=num_keypoints)
  return xy, desc, ok


def _pad(xy, desc, n):
  k = min(len(xy), n)
  pxy = np.zeros((n, 2), np.float32)
  pd = np.zeros((n, desc.shape[1] if desc.ndim == 2 else 256), bool)
  ok = np.zeros(n, bool)
  pxy[:k], pd[:k], ok[:k] = xy[:k], desc[:k], True
  return pxy, pd, ok


def detect(image, *, detector='harris', num_keypoints=2000):
  """Stage 1. (xy [K, 2], descriptors [K, 256] bool, valid [K]) of one
  [H, W, C] image: on-device Harris/rBRIEF, or host ORB (detector='orb')."""
  if detector == 'harris':
    return _detect(image, num_keypoints=num_keypoints)
  return _pad(*detect_orb(image, num_keypoints=num_keypoints), num_keypoints)


@functools.partial(compiled.jit, static_argnames=('ratio', 'threshold',
                                                  'num_hypotheses'))
def _register_pair(key, pair, xy_a, desc_a, ok_a, xy_b, desc_b, ok_b, *,
                   ratio, threshold, num_hypotheses):
  key = jax.random.fold_in(key, pair)
  idx, valid = homography.match(desc_a, desc_b, binary=True, ratio=ratio,
                                valid_a=ok_a, valid_b=ok_b)
  h, inliers, rmse = homography.ransac_homography(
      key, xy_a, xy_b[idx], valid, num_hypotheses=num_hypotheses,
      threshold=threshold)
  return h, jnp.sum(valid), jnp.sum(inliers), rmse


def match(key, feats, *, ratio=0.8, threshold=3.0, num_hypotheses=2048):
  """Stage 2. Registers every pair (i < j) of per-image `feats` (from
  `detect`).

  Returns:
    (homographies {(i, j): 3x3 float64 mapping image i to image j},
     inliers [N, N] int (symmetric), pairs: a dict per pair with its match
     and inlier counts and RMSE in pixels).
  """
  n = len(feats)
  hs, inl, pairs = {}, np.zeros((n, n), int), []
  for i in range(n):
    for j in range(i + 1, n):
      h, m, k, rmse = _register_pair(
          key, np.int32(i * n + j), *feats[i], *feats[j],
          ratio=ratio, threshold=threshold, num_hypotheses=num_hypotheses)
      hs[(i, j)] = np.asarray(h, np.float64)
      inl[i, j] = inl[j, i] = int(k)
      pairs.append({'i': i, 'j': j, 'matches': int(m), 'inliers': int(k),
                    'rmse_px': float(rmse)})
  return hs, inl, pairs


def order(n, inliers, min_inliers):
  """Stage 3. Maximum spanning tree over inlier counts, from the
  best-connected image: (root, {image: parent image, root: None}).

  Raises:
    errors.InputError: naming an image that overlaps none of the others.
  """
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
      raise errors.InputError(
          f'image {j} does not overlap the others: its best pair is with image '
          f'{best} with {int(inliers[j, best])} RANSAC inliers (need '
          f'{min_inliers}). Unplaced images: {lost}.')
    _, i, j = max(cand)
    parent[j] = i
    done.add(j)
  return ref, parent


def estimate(homographies, root, parent):
  """Stage 4. Each image's 3x3 homography into the root image's frame,
  composed along the spanning tree from `order`."""
  to_ref = {root: np.eye(3)}
  pending = [c for c in parent if parent[c] is not None]
  while pending:
    for c in list(pending):
      p = parent[c]
      if p in to_ref:
        h_cp = (np.linalg.inv(homographies[(p, c)]) if p < c
                else homographies[(c, p)])
        to_ref[c] = to_ref[p] @ h_cp
        pending.remove(c)
  return [to_ref[i] for i in range(len(to_ref))]


def canvas(sizes, to_ref, *, max_canvas_pixels=60e6):
  """Stage 4, continued. The canvas that holds every image (of [H, W]
  `sizes`) under its homography `to_ref`: (image -> canvas homographies,
  (height, width)).

  Raises:
    errors.InputError: if a homography sends a corner behind the camera or
      the canvas exceeds `max_canvas_pixels` (a wrong registration).
  """
  corners = []
  for i, (h, w) in enumerate(sizes):
    c = np.array([[0, 0], [w - 1, 0], [0, h - 1], [w - 1, h - 1]], np.float64)
    z = c @ to_ref[i][2, :2] + to_ref[i][2, 2]
    if np.any(z <= 0):
      raise errors.InputError(
          f'image {i}: its homography sends a corner behind the camera; the '
          'registration is wrong (check overlaps).')
    corners.append((c @ to_ref[i][:2, :2].T + to_ref[i][:2, 2]) / z[:, None])
  allc = np.concatenate(corners)
  x0, y0 = np.floor(allc.min(0))
  x1, y1 = np.ceil(allc.max(0))
  ow, oh = int(x1 - x0 + 1), int(y1 - y0 + 1)
  if ow * oh > max_canvas_pixels:
    worst = int(np.argmax([np.ptp(c, 0).prod() for c in corners]))
    raise errors.InputError(
        f'the panorama canvas would be {oh}x{ow} = {ow * oh / 1e6:.0f} Mpx '
        f'(limit {max_canvas_pixels / 1e6:.0f} Mpx); image {worst} is '
        'stretched the most, so its registration is likely wrong.')
  shift = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1.0]])
  return [shift @ h for h in to_ref], (oh, ow)


def _check_images(images, detector, blend):
  if len(images) < 2:
    raise errors.InputError(
        f'panorama needs at least 2 images, got {len(images)}.')
  if detector not in DETECTORS:
    raise errors.InputError(f'detector={detector!r}; expected one of '
                            f'{DETECTORS}.')
  if blend not in BLENDS:
    raise errors.InputError(f'blend={blend!r}; expected one of {BLENDS}.')
  imgs = [checks.image_layout(np.asarray(x), f'images[{i}]', min_hw=32)
          for i, x in enumerate(images)]
  if len({x.shape[-1] for x in imgs}) > 1:
    raise errors.InputError('images: channel counts differ '
                            f'({[x.shape[-1] for x in imgs]}).')
  if detector == 'harris' and len({x.dtype for x in imgs}) == 1 and imgs[
      0].dtype in (np.uint8, np.uint16):
    # Decoded photos stay integers up to the device, which scales them to
    # [0, 1] inside the stages: a quarter (uint8) of the bytes to copy.
    return imgs
  # On the host: the images go to the stages as NumPy arrays anyway.
  return [np.asarray(checks.image(x, f'images[{i}]'), np.float32)
          for i, x in enumerate(imgs)]


def stitch(images, *, key, detector='harris', num_keypoints=2000,
           ratio=0.8, ransac_threshold=3.0, num_hypotheses=2048,
           min_inliers=20, blend='multiband', levels=5,
           gain_compensation=True, max_canvas_pixels=60e6):
  """Stitches 2..N overlapping photos (any order) into one panorama.

  Keypoints are oriented Harris corners with rBRIEF descriptors found on
  device (`keypoints.detect_and_describe`, at ~0.6 Mpx), or scikit-image's
  ORB on the host with detector='orb'; matching, RANSAC, warping and blending
  run on the default JAX device. Images are placed by a maximum spanning tree
  over pairwise inlier counts, rooted at the best-connected image, whose frame
  the canvas extends.

  Args:
    images: list of [H, W, C] images with the same C: float in [0, 1], or
      uint8/uint16 as decoded (scaled to [0, 1] on the device, which copies
      a quarter of the bytes for uint8).
    key: PRNG key for RANSAC.
    detector: 'harris' (on device) or 'orb' (scikit-image, host; slower).
    num_keypoints, ratio, ransac_threshold, num_hypotheses, min_inliers:
      registration settings (threshold in full-resolution pixels).
    blend: 'multiband' (seams where each image's centre weight is largest,
      blended per band; Brown & Lowe 2007), 'feather' (centre weights
      normalised: a cross-fade over the whole overlap) or 'none' (last image
      on top).
    levels: multi-band levels.
    gain_compensation: equalise exposure between images first.
    max_canvas_pixels: refuse canvases larger than this (a bad homography can
      imply one of many gigapixels).

  Returns:
    Panorama.
  """
  imgs = _check_images(images, detector, blend)
  if detector == 'harris':
    # On the device once, for detection and rendering both: each copy of a
    # photo into fresh memory costs page faults (`--bench=panorama`).
    imgs = [jax.device_put(x) for x in imgs]
  feats = [detect(x, detector=detector, num_keypoints=num_keypoints)
           for x in imgs]
  hs, inliers, pairs = match(key, feats, ratio=ratio,
                             threshold=ransac_threshold,
                             num_hypotheses=num_hypotheses)
  root, parent = order(len(imgs), inliers, min_inliers)
  sizes = [x.shape[:2] for x in imgs]
  homs, out_hw = canvas(sizes, estimate(hs, root, parent),
                        max_canvas_pixels=max_canvas_pixels)
  out, cover = render(imgs, np.stack(homs).astype(np.float32), out_hw=out_hw,
                      boxes=footprints(sizes, homs, out_hw), blend=blend,
                      levels=levels, gain_compensation=gain_compensation)
  return Panorama(np.asarray(out), np.asarray(cover), homs, pairs, root)


def footprints(sizes, homs, out_hw, margin=2):
  """Each image's bounding box on the canvas, (y0, x0, height, width), with
  `margin` pixels to spare. A homography that keeps every corner in front of
  the camera (as `canvas` checks) maps the image onto the convex quadrangle
  of its corners, so no pixel it covers lies outside this box."""
  oh, ow = out_hw
  boxes = []
  for (h, w), hom in zip(sizes, homs):
    c = np.array([[0, 0, 1], [w - 1, 0, 1], [0, h - 1, 1], [w - 1, h - 1, 1]],
                 np.float64) @ np.asarray(hom, np.float64).T
    xy = c[:, :2] / c[:, 2:]
    x0, y0 = (max(int(np.floor(v)) - margin, 0) for v in xy.min(0))
    x1, y1 = (min(int(np.ceil(v)) + margin + 1, n)
              for v, n in zip(xy.max(0), (ow, oh)))
    boxes.append((y0, x0, max(y1 - y0, 1), max(x1 - x0, 1)))
  return tuple(boxes)


def seam_region(boxes, out_hw, levels):
  """The canvas box (y0, x0, height, width) that multi-band blending has to
  cover, or None for the whole canvas.

  Where one image alone covers the canvas, every image's fill there is that
  image (`render`), so the pyramid's band differences vanish and the blend
  is that image. Only the pixels two or more footprints share, widened by
  the pyramid filters' reach (the 5-tap kernel spreads about 2^(l+1) pixels
  by level l, there and back: 8 * 2^levels is ample), need the pyramid; the
  box starts on a multiple of 2^levels so that every level samples the same
  canvas pixels as a whole-canvas pyramid would.
  """
  oh, ow = out_hw
  shared = []
  for i, (ay, ax, ah, aw) in enumerate(boxes):
    for by, bx, bh, bw in boxes[i + 1:]:
      y0, x0 = max(ay, by), max(ax, bx)
      y1, x1 = min(ay + ah, by + bh), min(ax + aw, bx + bw)
      if y1 > y0 and x1 > x0:
        shared.append((y0, x0, y1, x1))
  if not shared:
    return None
  step, margin = 2**levels, 8 * 2**levels
  y0 = max(min(b[0] for b in shared) - margin, 0) // step * step
  x0 = max(min(b[1] for b in shared) - margin, 0) // step * step
  y1 = min(max(b[2] for b in shared) + margin, oh)
  x1 = min(max(b[3] for b in shared) + margin, ow)
  if (y0, x0, y1, x1) == (0, 0, oh, ow):
    return None
  return (y0, x0, y1 - y0, x1 - x0)


def _centre_weight(sx, sy, h, w):
  """Brown & Lowe's blending weight: a tent in x times a tent in y, 1 at the
  source image's centre and 0 at its border (and outside)."""
  wx = 1.0 - jnp.abs(2.0 * sx / jnp.maximum(w - 1.0, 1.0) - 1.0)
  wy = 1.0 - jnp.abs(2.0 * sy / jnp.maximum(h - 1.0, 1.0) - 1.0)
  return jnp.clip(wx, 0.0, 1.0) * jnp.clip(wy, 0.0, 1.0)


def _warp_one(image, h_src_to_canvas, out_hw, box=None):
  """One image [H, W, C] onto the canvas: (warped [oh, ow, C], weight
  [oh, ow], covered [oh, ow]), 0 where not covered. Only the canvas pixels of `box` (y0, x0, height, width; the
  whole canvas if None) are sampled: the image covers none outside it."""
  oh, ow = out_hw
  y0, x0, bh, bw = box if box is not None else (0, 0, oh, ow)
  hinv = jnp.linalg.inv(h_src_to_canvas)
  ys = jnp.arange(y0, y0 + bh, dtype=jnp.float32)[:, None]
  xs = jnp.arange(x0, x0 + bw, dtype=jnp.float32)[None, :]
  z = hinv[2, 0] * xs + hinv[2, 1] * ys + hinv[2, 2]
  ahead = z > 1e-12
  z = jnp.where(ahead, z, 1.0)
  sx = jnp.where(ahead, (hinv[0, 0] * xs + hinv[0, 1] * ys + hinv[0, 2]) / z,
                 -1.0)
  sy = jnp.where(ahead, (hinv[1, 0] * xs + hinv[1, 1] * ys + hinv[1, 2]) / z,
                 -1.0)
  h, w = float(image.shape[0]), float(image.shape[1])
  inside = (sx >= 0) & (sy >= 0) & (sx <= w - 1) & (sy <= h - 1)
  vals, _ = warp.bilinear_unchecked(image, sx, sy)
  # + 1e-6: a covered pixel on the source's very border (centre weight 0)
  # still outweighs images that do not cover it.
  weight = jnp.where(inside, _centre_weight(sx, sy, h, w) + 1e-6, 0.0)
  pad = ((y0, oh - y0 - bh), (x0, ow - x0 - bw))
  return (jnp.pad(jnp.where(inside[..., None], vals, 0.0), pad + ((0, 0),)),
          jnp.pad(weight, pad), jnp.pad(inside, pad))


def gain_factors(grey, covered, sigma_n=10.0 / 255, sigma_g=0.1):
  """Stage 5. Per-image gains (Brown & Lowe 2007) from mean intensities over pairwise
  overlaps: grey, covered [N, P] (a subsampled canvas). Solves the N x N
  normal equations of sum_ij cnt_ij ((g_i m_ij - g_j m_ji)^2 / sigma_n^2 +
  (1 - g_i)^2 / sigma_g^2) on device."""
  n = grey.shape[0]
  v = covered.astype(jnp.float32)
  cnt = v @ v.T  # [N, N] overlap pixel counts
  sums = (grey * v) @ v.T  # sums[i, j] = sum over overlap(i, j) of grey_i
  mean = sums / jnp.maximum(cnt, 1.0)  # m_ij: mean of image i over (i, j)
  off = 1.0 - jnp.eye(n)
  c = cnt * off
  diag = jnp.sum(c * (mean**2 / sigma_n**2 + 1.0 / sigma_g**2), axis=1)
  a = -c * mean * mean.T / sigma_n**2 + jnp.diag(diag)
  b = jnp.sum(c, axis=1) / sigma_g**2
  isolated = diag == 0  # overlaps nothing: gain 1
  a = jnp.where(isolated[:, None] | isolated[None, :], jnp.eye(n), a)
  b = jnp.where(isolated, 1.0, b)
  return jnp.linalg.solve(a, b)


@functools.partial(compiled.jit, static_argnames=(
    'out_hw', 'boxes', 'blend', 'levels', 'gain_compensation'))
def render(images, homs, *, out_hw, blend, levels, gain_compensation,
           boxes=None):
  """Stage 6. Warps N images [Hi, Wi, C] (a list; sizes may differ) by homs
  [N, 3, 3] onto one canvas, equalises gains and blends the seams. boxes:
  each image's footprint on the canvas (`footprints`), so that its warp
  samples only there; None samples the whole canvas (the same result,
  slower)."""
  # One warp per image, not jax.vmap: XLA:CPU runs the batched gathers vmap
  # makes slower (`launch.benchmark --bench=panorama`). Materialised: fused
  # into their consumers the gathers would be redone.
  images = [checks.image(x, f'images[{i}]') for i, x in enumerate(images)]
  parts = [_warp_one(x, homs[i], out_hw, None if boxes is None else boxes[i])
           for i, x in enumerate(images)]
  warped, weight, covered = (jnp.stack(p) for p in zip(*parts))
  if gain_compensation:
    step = 4  # gains are means over overlaps: a quarter resolution will do
    sub = warped[:, ::step, ::step]
    grey = features.grey(sub)[..., 0].reshape(sub.shape[0], -1)
    g = gain_factors(grey, covered[:, ::step, ::step].reshape(
        sub.shape[0], -1))
    warped = warped * g.astype(warped.dtype)[:, None, None, None]
  n = warped.shape[0]
  cover = xla_hints.sum_leading(covered.astype(jnp.float32)) > 0
  total = xla_hints.sum_leading(weight)
  # Feathered composite: centre weights normalised per pixel.
  soft = weight / jnp.maximum(total, 1e-12)
  feathered = xla_hints.sum_leading(warped * soft[..., None])
  # Each composite below is already 0 where no image reaches.
  if blend == 'none':  # last image on top
    out = warped[0]
    for k in range(1, n):
      out = jnp.where(covered[k][..., None], warped[k], out)
    return out, cover
  if blend == 'feather':
    return feathered, cover
  # Multi-band (Brown & Lowe 2007): each pixel goes to the image whose centre
  # weight is largest there, and the pyramid smooths that seam per band.
  # Outside its own coverage each image is filled with the feathered
  # composite, so the low bands do not pull black in from beyond its edge.
  # Where one image alone covers the canvas every fill is that image and the
  # blend is too, so the pyramid runs only on the seams' region (the whole
  # canvas without footprints) and the last image's fill is the rest.
  y0, x0, bh, bw = ((seam_region(boxes, out_hw, levels) if boxes else None)
                    or (0, 0) + tuple(out_hw))
  part = (slice(None), slice(y0, y0 + bh), slice(x0, x0 + bw))
  best = jnp.argmax(weight[part], axis=0)
  hard = (best[None] == jnp.arange(n)[:, None, None]).astype(warped.dtype)
  filled = xla_hints.materialise(jnp.where(
      covered[part][..., None], warped[part], feathered[None][part]))
  seams = blend_lib.multiband_blend(filled, hard[..., None], levels=levels)
  # The pyramid spreads a little past the images' edges: cut it there.
  seams = jnp.where(cover[part[1:]][..., None], seams, 0.0)
  last = jnp.where(covered[-1][..., None], warped[-1], feathered)
  return lax.dynamic_update_slice(last, seams, (y0, x0, 0)), cover
