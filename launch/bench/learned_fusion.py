"""Learned fusion benchmarks for launch.benchmark (issue 20).

- learned_exposure: MEF-SSIM of a trained exposure network against gensynth's
  Mertens fusion on the MEF stacks each run held out (info.json), both
  clipped to [0, 1] as written to a file; time to fuse 3 x 3840x2160.
- learned_multifocus: Q^AB/F and MI on the Lytro pairs, on the lossless
  output and after JPEG quality-75 re-encoding, beside gensynth's
  multi-focus fusion.
- mef_ssim_numpy: gensynth.metrics.image.mef_ssim against a straightforward
  NumPy/SciPy implementation of the same formulas (value and time).
"""

import functools
import glob
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app
from absl import flags
from PIL import Image
from scipy import ndimage

from gensynth.data import stacks
from gensynth.evaluation import runs
from gensynth.metrics import image as metrics
from gensynth.synth import fusion
from gensynth.synth import io
from gensynth.synth import learned
from gensynth.train import fusion as fusion_train
from gensynth.train import workdir as workdir_lib

FLAGS = flags.FLAGS


def _median_time(fn, rounds):
  times = []
  for _ in range(rounds):
    t = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t)
  return float(np.median(times))


def _read_stack(folder):
  files = sorted(glob.glob(os.path.join(folder, '*.png')) +
                 glob.glob(os.path.join(folder, '*.jpg')))
  return np.stack([io.read_image(f)[0] for f in files])


def learned_exposure():
  """Held-out MEF-SSIM of each --checkpoints run against Mertens; 4K time."""
  root = os.path.join(FLAGS.data_dir, 'fusion', 'mef')
  mertens = jax.jit(fusion.exposure_fusion)
  mef = jax.jit(lambda x, f: metrics.mef_ssim(x, jnp.clip(f, 0, 1)))
  rows, first = [], None
  for workdir in FLAGS.checkpoints:
    model, params, info = runs.load_fusion(workdir)
    fuse = jax.jit(functools.partial(learned.learned_fusion, model=model))
    first = first or (fuse, params)
    for scene in info.get('held_out_scenes', []):
      x = _read_stack(os.path.join(root, scene))
      ours = float(mef(x, fuse(params, x)))
      base = float(mef(x, mertens(x)))
      rows.append({'run': workdir, 'scene': scene, 'exposures': len(x),
                   'learned': round(ours, 4), 'mertens': round(base, 4),
                   'gain': round(ours - base, 4)})
  out = {'bench': 'learned_exposure', 'scenes': rows}
  if rows:
    gains = [r['gain'] for r in rows]
    out.update(mean_learned=round(float(np.mean([r['learned'] for r in rows])),
                                  4),
               mean_mertens=round(float(np.mean([r['mertens'] for r in rows])),
                                  4),
               mean_gain=round(float(np.mean(gains)), 4),
               worst_gain=round(float(np.min(gains)), 4))
  if first is not None:
    # 3 x 3840x2160 uint8, as the exposure_fusion benchmark builds it.
    base = np.asarray(Image.fromarray(np.uint8(np.clip(_read_stack(
        os.path.join(root, sorted(os.listdir(root))[0]))[0] * 255, 0, 255)))
                      .resize((3840, 2160), Image.BILINEAR))
    big = np.stack([np.clip(base.astype(np.float32) * s, 0, 255).astype(
        np.uint8) for s in (0.5, 1.0, 2.0)])
    fuse, params = first
    fuse(params, big).block_until_ready()
    mertens(big).block_until_ready()
    t_ours, t_base = [], []
    for _ in range(FLAGS.rounds):  # alternating
      t_ours.append(_median_time(
          lambda: fuse(params, big).block_until_ready(), 1))
      t_base.append(_median_time(lambda: mertens(big).block_until_ready(), 1))
    out['time_3x3840x2160'] = {
        'learned_ms': round(1e3 * float(np.median(t_ours)), 1),
        'mertens_ms': round(1e3 * float(np.median(t_base)), 1),
        'ratio': round(float(np.median(t_ours) / np.median(t_base)), 3)}
  return out


def learned_multifocus():
  """Q^AB/F and MI on the Lytro pairs: the first --checkpoints run vs
  gensynth's multi-focus fusion, lossless (8-bit) and after JPEG q75."""
  root = os.path.join(FLAGS.data_dir, 'fusion', 'lytro')
  methods = {'multifocus': jax.jit(fusion.multifocus_fusion)}
  if FLAGS.checkpoints:
    model, params, _ = runs.load_fusion(FLAGS.checkpoints[0])
    fuse = jax.jit(functools.partial(learned.learned_fusion, model=model))
    methods['learned'] = lambda x: fuse(params, x)
  scores = {(m, c, k): [] for m in methods for c in ('png', 'jpeg75')
            for k in ('qabf', 'mi')}
  for a_path in sorted(glob.glob(os.path.join(root, '*-A.jpg'))):
    a, _ = io.read_image(a_path)
    b, _ = io.read_image(a_path.replace('-A.jpg', '-B.jpg'))
    x = np.stack([a, b])
    for m, fn in methods.items():
      f = np.round(np.clip(np.asarray(fn(x)), 0, 1) * 255) / 255  # 8-bit PNG
      for codec, img in (('png', f), ('jpeg75', stacks.jpeg_roundtrip(f, 75))):
        scores[(m, codec, 'qabf')].append(float(metrics.qabf(a, b, img)))
        scores[(m, codec, 'mi')].append(float(metrics.mutual_information(
            a, b, img)))
  return {'bench': 'learned_multifocus',
          'pairs': len(scores[('multifocus', 'png', 'qabf')]),
          'mean': {f'{m}/{c}/{k}': round(float(np.mean(v)), 4)
                   for (m, c, k), v in scores.items()}}


def learned_multifocus_validation():
  """Multi-focus networks on synthetic two-source sets no benchmark scores:
  --sets sets of 512-px crops of the first run's training photos that are at
  least 512 px (stream 5 of its data: never a training or trainer-validation
  draw), with lossless sources and with sources written as JPEG q75 files
  (as the Lytro pairs are); --regions picks the sets' regions (random
  shapes, or the photo's segments: boundaries along its edges, as real
  scenes' are). Fused output rounded to 8 bits, scored against
  the sources it was given, and again after JPEG q75 re-encoding; SSIM
  against the sharp photo. --down_levels reads each network at those
  working scales instead of its config's. Recipes are chosen here, then
  scored once on Lytro (--bench=learned_multifocus)."""
  if not FLAGS.checkpoints:
    raise app.UsageError('--bench=learned_multifocus_validation needs '
                         '--checkpoints (multi-focus run workdirs).')
  for regions in FLAGS.regions:
    if regions not in stacks.REGIONS:
      raise app.UsageError(f'--regions={regions!r}; expected a list of '
                           f'{stacks.REGIONS}.')
  crop, out, sets = 512, {}, None
  for run in FLAGS.checkpoints:
    model, params, _ = runs.load_fusion(run)
    d = workdir_lib.load_config(run).data
    if sets is None:
      photos = [p for p in fusion_train.photos(d) if min(p.shape[:2]) >= crop]
      sets = {}  # kind -> [(sources, sharp photo)]
      for regions in FLAGS.regions:
        batches = stacks.FusionBatches(
            'multifocus', photos=photos, crop=crop, ks=(2,),
            global_batch_size=8, seed=0, defocus_blur=d.defocus_blur,
            defocus_regions=regions)
        plain = [batches.example(20_000, i, 2, stream=5)
                 for i in range(FLAGS.sets)]
        sets[f'regions={regions} | lossless'] = [
            (e['sources'], e['target']) for e in plain]
        sets[f'regions={regions} | jpeg75'] = [
            (np.stack([stacks.jpeg_roundtrip(x, 75) for x in e['sources']]),
             e['target']) for e in plain]
    scales = ([int(v) for v in FLAGS.down_levels] if FLAGS.down_levels
              else [model.down_levels])
    for level in scales:
      fuse = jax.jit(functools.partial(learned.learned_fusion,
                                       model=model.clone(down_levels=level)))
      for kind, pairs in sets.items():
        for name, p in (('learned', params),
                        ('prior', fusion_train.prior_only(params))):
          cols = {c: [] for c in ('qabf', 'mi', 'ssim_to_photo',
                                  'qabf_reencoded', 'mi_reencoded')}
          for x, t in pairs:
            f = np.round(np.clip(np.asarray(fuse(p, x)), 0, 1) * 255) / 255
            cols['ssim_to_photo'].append(float(np.mean(
                metrics.ssim(f[None], t[None]))))
            for tag, img in (('', f), ('_reencoded', stacks.jpeg_roundtrip(f, 75))):
              cols['qabf' + tag].append(float(metrics.qabf(x[0], x[1], img)))
              cols['mi' + tag].append(float(metrics.mutual_information(
                  x[0], x[1], img)))
          out[f'{run} | down_levels={level} | {kind} | {name}'] = {
              c: round(float(np.mean(v)), 5) for c, v in cols.items()}
  return {'bench': 'learned_multifocus_validation', 'sets': FLAGS.sets,
          'crop': crop, 'mean': out}


def mef_ssim_reference(sources, fused):
  """MEF-SSIM in NumPy/SciPy, formula by formula (see metrics.image.mef_ssim):
  sources [K, H, W, 3], fused [H, W, 3], floats in [0, 1]."""
  luma = np.asarray((0.299, 0.587, 0.114))
  g_src = (np.asarray(sources, np.float64) @ luma) * 255
  g_f = (np.asarray(fused, np.float64) @ luma) * 255
  t = np.arange(-5, 6)
  g = np.exp(-t**2 / (2 * 1.5**2))
  g /= g.sum()

  def filt(z):  # 'valid' separable Gaussian on the last two axes
    z = ndimage.correlate1d(z, g, axis=-2, mode='constant')[..., 5:-5, :]
    return ndimage.correlate1d(z, g, axis=-1, mode='constant')[..., 5:-5]

  c = (0.03 * 255)**2
  wts = np.asarray((0.0448, 0.2856, 0.3001))
  wts = wts / wts.sum()
  score = 1.0
  for level, wl in enumerate(wts):
    if level:
      h, w = g_f.shape[-2] // 2 * 2, g_f.shape[-1] // 2 * 2
      pool = lambda z: 0.25 * (z[..., 0:h:2, 0:w:2] + z[..., 1:h:2, 0:w:2] +
                               z[..., 0:h:2, 1:w:2] + z[..., 1:h:2, 1:w:2])
      g_src, g_f = pool(g_src), pool(g_f)
    k = len(g_src)
    mu, mu_f = filt(g_src), filt(g_f)
    cov = np.stack([np.stack([filt(g_src[i] * g_src[j]) - mu[i] * mu[j]
                              for j in range(k)]) for i in range(k)])
    for i in range(k):
      cov[i, i] = np.maximum(cov[i, i], 0)
    cov_f = np.stack([filt(g_src[i] * g_f) - mu[i] * mu_f for i in range(k)])
    var_f = np.maximum(filt(g_f * g_f) - mu_f**2, 0)
    contrast = np.sqrt(np.stack([cov[i, i] for i in range(k)]))
    c_hat = contrast.max(0)
    r = np.sqrt(np.maximum(cov.sum((0, 1)), 0)) / np.maximum(
        contrast.sum(0), 1e-12)
    p = np.minimum(np.tan(np.pi * np.clip(r, 0, 1 - 1e-4) / 2), 10.0)
    safe = np.maximum(contrast, 1e-12)
    wk = np.where(contrast > 1e-12, safe**p, 0.0)
    a = wk / np.maximum(wk.sum(0), 1e-30) / safe
    var_s = np.einsum('i...,ij...,j...->...', a, cov, a)
    cov_sf = (a * cov_f).sum(0)
    std_f = np.sqrt(var_f)
    corr = np.clip(cov_sf / np.sqrt(np.maximum(var_s, 1e-24)), -std_f, std_f)
    q = (2 * c_hat * corr + c) / (c_hat**2 + var_f + c)
    ql = q.mean()
    score *= np.sign(ql) * np.abs(ql)**wl
  return float(score)


def mef_ssim_numpy():
  """The MEF-SSIM op (jitted, warm) against mef_ssim_reference per stack."""
  root = os.path.join(FLAGS.data_dir, 'fusion', 'mef')
  op = jax.jit(metrics.mef_ssim)
  mertens = jax.jit(fusion.exposure_fusion)
  rows = []
  for scene in sorted(os.listdir(root)):
    if not os.path.isdir(os.path.join(root, scene)):
      continue
    x = _read_stack(os.path.join(root, scene))
    f = np.clip(np.asarray(mertens(x)), 0, 1)
    t0 = time.perf_counter()
    got = float(op(x, f))
    first = time.perf_counter() - t0
    ref = mef_ssim_reference(x, f)
    rows.append({
        'scene': scene, 'exposures': len(x), 'hw': list(x.shape[1:3]),
        'gensynth': round(got, 6), 'numpy': round(ref, 6),
        'abs_diff': float(abs(got - ref)),
        'gensynth_first_call_s': round(first, 2),
        'gensynth_warm_ms': round(1e3 * _median_time(
            lambda: op(x, f).block_until_ready(), FLAGS.rounds), 1),
        'numpy_ms': round(1e3 * _median_time(
            lambda: mef_ssim_reference(x, f), max(1, FLAGS.rounds // 2)), 1)})
  return {'bench': 'mef_ssim_numpy', 'scenes': rows,
          'max_abs_diff': max(r['abs_diff'] for r in rows)}
