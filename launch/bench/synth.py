"""Synthesis benchmarks for launch.benchmark: gensynth next to OpenCV.

Every timing is a median over repeats measured in one process, alternating
the implementations; results are compared numerically where both compute the
same thing.
"""

import glob
import os
import time

import cv2
import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from gensynth.metrics import image as metrics
from gensynth.synth import blend
from gensynth.synth import fusion
from gensynth.synth import io
from gensynth.synth import panorama as panorama_lib

FLAGS = flags.FLAGS


def _median_times(fns, repeats):
  """Alternates the callables `repeats` times; returns median seconds each."""
  times = {k: [] for k in fns}
  for _ in range(repeats):
    for k, fn in fns.items():
      t = time.perf_counter()
      fn()
      times[k].append(time.perf_counter() - t)
  return {k: float(np.median(v)) for k, v in times.items()}


def opencv_multiband(images, masks, levels):
  """Laplacian blend with cv2.pyrDown/pyrUp and in-place NumPy arithmetic.

  The fastest OpenCV formulation we found for float images (BUILD_NOTES.md):
  one Laplacian pass per image, masks' Gaussian pyramids, accumulate, collapse.
  """
  acc = None
  for img, m in zip(images, masks):
    g, gm = [img], [m]
    for _ in range(levels - 1):
      g.append(cv2.pyrDown(g[-1]))
      gm.append(cv2.pyrDown(gm[-1]))
    bands = []
    for i in range(levels - 1):
      up = cv2.pyrUp(g[i + 1], dstsize=g[i].shape[1::-1])
      np.subtract(g[i], up, out=up)
      np.multiply(up, gm[i][..., None], out=up)
      bands.append(up)
    bands.append(g[-1] * gm[-1][..., None])
    acc = bands if acc is None else [np.add(a, b, out=a)
                                     for a, b in zip(acc, bands)]
  res = acc[-1]
  for band in reversed(acc[:-1]):
    res = np.add(band, cv2.pyrUp(res, dstsize=band.shape[1::-1]), out=band)
  return res


def _blend_inputs(size, batch=None, seed=0):
  rng = np.random.default_rng(seed)
  shape = ((batch,) if batch else ()) + (size, size, 3)
  a = rng.random(shape, np.float32)
  b = rng.random(shape, np.float32)
  x = np.linspace(-1, 1, size, dtype=np.float32)
  m = 1 / (1 + np.exp(-8 * (x[None, :] + 0.2 * x[:, None])))  # soft seam
  m = np.broadcast_to(m, shape[:-1]).astype(np.float32).copy()
  return a, b, m


def pyramid_blend():
  """2 x 2048x2048x3 float32, 6 levels, soft mask; and 8 pairs of 512x512."""
  levels = 6
  out = {'bench': 'pyramid_blend', 'levels': levels}
  fn = jax.jit(lambda x, m: blend.multiband_blend(x, m, levels=levels))
  for name, size, batch in (('single_2048', 2048, None),
                            ('batch8_512', 512, 8)):
    a, b, m = _blend_inputs(size, batch)
    x = jnp.stack([a, b])
    mm = blend.two_image_masks(m)[..., None]
    if batch:
      run_cv = lambda: [opencv_multiband([a[i], b[i]], [1 - m[i], m[i]], levels)
                        for i in range(batch)]
    else:
      run_cv = lambda: opencv_multiband([a, b], [1 - m, m], levels)
    ref = np.asarray(run_cv())
    got = np.asarray(fn(x, mm))
    times = _median_times({'gensynth': lambda: fn(x, mm).block_until_ready(),
                           'opencv': run_cv}, FLAGS.rounds)
    out[name] = {'gensynth_ms': round(times['gensynth'] * 1e3, 2),
                 'opencv_ms': round(times['opencv'] * 1e3, 2),
                 'ratio_gensynth_over_opencv': round(
                     times['gensynth'] / times['opencv'], 3),
                 'max_abs_diff': float(np.abs(got - ref).max())}
  return out


def weighted_blend():
  """Two-image weighted blend at 2048x2048x3 vs the machine's streaming rate."""
  a, b, _ = _blend_inputs(2048)
  x = jnp.stack([a, b])
  w = jnp.array([0.3, 0.7])
  fn = jax.jit(blend.weighted_blend)
  into = jax.jit(blend.weighted_blend_into, donate_argnums=0)
  dst = np.empty_like(a)
  n_bytes = 3 * a.nbytes  # read two images, write one
  fn(x, w).block_until_ready()
  state = {'out': into(jnp.zeros_like(x[0]), x, w)}  # reused, like cv2's dst
  np.testing.assert_allclose(np.asarray(state['out']),
                             cv2.addWeighted(a, 0.3, b, 0.7, 0.0), atol=1e-6)
  triad_dst = np.empty_like(a)

  def triad():  # STREAM-style triad in NumPy: the reference bandwidth
    np.multiply(b, 0.7, out=triad_dst)
    np.add(triad_dst, a, out=triad_dst)

  def gensynth_into():
    state['out'] = into(state['out'], x, w)
    state['out'].block_until_ready()

  times = _median_times({
      'gensynth_into': gensynth_into,
      'gensynth': lambda: fn(x, w).block_until_ready(),
      'opencv': lambda: cv2.addWeighted(a, 0.3, b, 0.7, 0.0, dst=dst),
      'numpy_triad': triad}, max(FLAGS.rounds, 15))
  gbs = {k: n_bytes / t / 1e9 for k, t in times.items()}
  best = max(gbs['numpy_triad'], gbs['opencv'])
  # gensynth_into writes into a donated buffer (as addWeighted writes into
  # dst and the triad into triad_dst); gensynth allocates its output anew.
  return {'bench': 'weighted_blend', 'shape': [2048, 2048, 3],
          **{f'{k}_gb_per_s': round(v, 2) for k, v in gbs.items()},
          'gensynth_into_fraction_of_best_streaming': round(
              gbs['gensynth_into'] / best, 3),
          'gensynth_fraction_of_best_streaming': round(gbs['gensynth'] / best,
                                                       3)}


def _mef_stacks():
  root = os.path.join(FLAGS.data_dir, 'fusion', 'mef')
  for scene in sorted(os.listdir(root)):
    files = sorted(glob.glob(os.path.join(root, scene, '*.png')) +
                   glob.glob(os.path.join(root, scene, '*.jpg')))
    if files:
      yield scene, [np.asarray(cv2.imread(f)[..., ::-1]) for f in files]


def exposure_fusion():
  """Mertens fusion vs cv2.createMergeMertens: MEF stacks and 3 x 3840x2160."""
  fn = jax.jit(fusion.exposure_fusion)
  merge = cv2.createMergeMertens()
  rows = []
  stacks = list(_mef_stacks())
  base = cv2.resize(np.asarray(cv2.imread(
      glob.glob(os.path.join(FLAGS.data_dir, 'fusion', 'mef', '*', '*'))[0])),
                    (3840, 2160))
  stacks.append(('synthetic_3x3840x2160', [
      np.clip(base.astype(np.float32) * s, 0, 255).astype(np.uint8)
      for s in (0.5, 1.0, 2.0)]))
  for scene, stack in stacks:
    x = jnp.asarray(np.stack(stack))
    ref = merge.process(stack)
    got = np.asarray(fn(x))
    times = _median_times({'gensynth': lambda: fn(x).block_until_ready(),
                           'opencv': lambda: merge.process(stack)},
                          FLAGS.rounds)
    rows.append({'scene': scene, 'exposures': len(stack),
                 'hw': list(stack[0].shape[:2]),
                 'gensynth_ms': round(times['gensynth'] * 1e3, 1),
                 'opencv_ms': round(times['opencv'] * 1e3, 1),
                 'ratio': round(times['gensynth'] / times['opencv'], 3),
                 'max_abs_diff': float(np.abs(got - ref).max()),
                 'mef_ssim_gensynth': round(float(metrics.mef_ssim(
                     x, np.clip(got, 0, 1))), 4),
                 'mef_ssim_opencv': round(float(metrics.mef_ssim(
                     x, np.clip(ref, 0, 1))), 4)})
  return {'bench': 'exposure_fusion', 'scenes': rows,
          'median_ratio': float(np.median([r['ratio'] for r in rows]))}


def multifocus():
  """Q^AB/F and MI on the Lytro pairs; apple/orange multi-band blend PNG."""
  root = os.path.join(FLAGS.data_dir, 'fusion')
  methods = {
      'gensynth_multifocus': jax.jit(lambda x: fusion.multifocus_fusion(x)),
      'pyramid_max_abs': jax.jit(lambda x: fusion.pyramid_max_abs_fusion(x)),
      'average': jax.jit(fusion.average_fusion)}
  q = {k: [] for k in methods}
  mi = {k: [] for k in methods}
  sf = {k: [] for k in methods}
  for a_path in sorted(glob.glob(os.path.join(root, 'lytro', '*-A.jpg'))):
    a, _ = io.read_image(a_path)
    b, _ = io.read_image(a_path.replace('-A.jpg', '-B.jpg'))
    x = jnp.stack([a, b])
    for k, fn in methods.items():
      f = jnp.clip(fn(x), 0, 1)
      q[k].append(float(metrics.qabf(a, b, f)))
      mi[k].append(float(metrics.mutual_information(a, b, f)))
      sf[k].append(float(metrics.spatial_frequency(f)))
  out = {'bench': 'multifocus', 'pairs': len(q['average']),
         'qabf_mean': {k: round(float(np.mean(v)), 4) for k, v in q.items()},
         'mi_mean': {k: round(float(np.mean(v)), 4) for k, v in mi.items()},
         'sf_mean': {k: round(float(np.mean(v)), 3) for k, v in sf.items()}}
  apple, _ = io.read_image(os.path.join(root, 'apple_orange', 'apple.png'))
  orange, _ = io.read_image(os.path.join(root, 'apple_orange', 'orange.png'))
  mask, _ = io.read_image(os.path.join(root, 'apple_orange', 'mask.png'))
  apple, orange = io.harmonise_channels([apple, orange])
  m = blend.two_image_masks(mask[..., :1])
  res = blend.multiband_blend(jnp.stack([apple, orange]), m, levels=6)
  if FLAGS.out_dir:
    os.makedirs(FLAGS.out_dir, exist_ok=True)
    path = os.path.join(FLAGS.out_dir, 'apple_orange_multiband.png')
    io.write_image(path, np.asarray(res))
    out['apple_orange_png'] = path
  return out


def panorama():
  """gensynth.synth.panorama.stitch vs cv2.Stitcher (PANORAMA mode)."""
  root = os.path.join(FLAGS.data_dir, 'panorama')
  sets = {'weir': sorted(glob.glob(os.path.join(root, 'weir_*.jpg'))),
          'arches': sorted(glob.glob(os.path.join(root, 'arches', '*.jpg'))),
          'exposure_error': sorted(glob.glob(
              os.path.join(root, 'exposure_error_*.jpg')))}
  out = {'bench': 'panorama', 'sets': []}
  for name, files in sets.items():
    bgr = [cv2.imread(f) for f in files]
    # Both libraries take the photos as decoded (uint8; gensynth scales them
    # on the device). The float32 column is the same photos converted on the
    # host first (what this benchmark timed before stitch took integers).
    rgb = [np.ascontiguousarray(x[..., ::-1]) for x in bgr]
    rgb_float = [x.astype(np.float32) / 255 for x in rgb]
    key = jax.random.key(0)
    result = panorama_lib.stitch(rgb, key=key)  # compile + warm-up
    panorama_lib.stitch(rgb_float, key=key)
    stitcher = cv2.Stitcher_create(cv2.Stitcher_PANORAMA)
    status, cv_pano = stitcher.stitch(bgr)
    times = _median_times({
        'gensynth': lambda: panorama_lib.stitch(rgb, key=key),
        'gensynth_float': lambda: panorama_lib.stitch(rgb_float, key=key),
        'opencv': lambda: stitcher.stitch(bgr)}, max(1, FLAGS.rounds // 2))
    row = {'set': name, 'images': len(files),
           'gensynth_s': round(times['gensynth'], 3),
           'gensynth_float_input_s': round(times['gensynth_float'], 3),
           'opencv_s': round(times['opencv'], 3),
           'ratio_gensynth_over_opencv': round(
               times['gensynth'] / times['opencv'], 3),
           'ratio_float_input_over_opencv': round(
               times['gensynth_float'] / times['opencv'], 3),
           'opencv_status': int(status),
           'pairs': result.pairs,
           'gensynth_shape': list(result.image.shape),
           'opencv_shape': list(cv_pano.shape) if status == 0 else None}
    if FLAGS.out_dir:
      os.makedirs(FLAGS.out_dir, exist_ok=True)
      io.write_image(os.path.join(FLAGS.out_dir, f'pano_{name}_gensynth.png'),
                     result.image)
      if status == 0:
        cv2.imwrite(os.path.join(FLAGS.out_dir, f'pano_{name}_opencv.png'),
                    cv_pano)
    out['sets'].append(row)
  return out
