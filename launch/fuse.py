r"""Fuses images on disk.

  python -m launch.fuse --method=pyramid --inputs=a.png,b.png --mask=m.png \
      --levels=6 --output=out.png

Methods: weighted (--weights, default equal), pyramid (multi-band blend; for
two inputs the mask is the weight of the second image: white = second),
multifocus, exposure (Mertens), poisson (the masked region of the second
image blended into the first in the gradient domain), learned (a fusion
network trained with launch.train, --checkpoint=its workdir). Prints what it
did and quality figures.

  python -m launch.fuse --method=learned --checkpoint=runs/fusion_exposure \
      --inputs=dark.jpg,mid.jpg,bright.jpg --output=fused.png
"""

import time

from absl import app
from absl import flags

from launch import runtime

# JAX and gensynth are imported inside the functions that use them, so that
# --help and flag errors answer without loading them.

flags.DEFINE_enum('method', None, ['weighted', 'pyramid', 'multifocus',
                                   'exposure', 'poisson', 'learned'],
                  'Fusion method.')
flags.DEFINE_string('checkpoint', None, 'learned: the workdir of a trained '
                    'fusion network (launch.train with '
                    'gensynth/configs/fusion_*.py).')
flags.DEFINE_list('inputs', None, 'Comma-separated input image paths.')
flags.DEFINE_string('mask', None, 'pyramid/poisson: weight map of the second '
                    'image (two inputs; grey, white = second image).')
flags.DEFINE_list('weights', None, 'weighted: one weight per input.')
flags.DEFINE_integer('levels', None, 'Pyramid levels (default: per method).')
flags.DEFINE_string('output', None, 'Output path (.png, .jpg).')
flags.DEFINE_enum('bits', 'auto', ['auto', '8', '16'],
                  'Output bit depth (auto: 16 for a PNG when any input is '
                  '16-bit).')
flags.mark_flags_as_required(['method', 'inputs', 'output'])
FLAGS = flags.FLAGS


def _load(paths):
  import numpy as np  # pylint: disable=g-import-not-at-top
  from gensynth.synth import io  # pylint: disable=g-import-not-at-top
  if len(paths) < 2:
    raise app.UsageError(f'--inputs needs at least two images, got {paths}.')
  loaded = [io.read_image(p) for p in paths]
  images = io.harmonise_channels([x for x, _ in loaded])
  sizes = {p: x.shape[:2] for p, x in zip(paths, images)}
  if len(set(sizes.values())) > 1:
    raise app.UsageError('inputs differ in size (H, W): ' + ', '.join(
        f'{p}={s}' for p, s in sizes.items()) + '; resize or crop them first.')
  return np.stack(images), max(b for _, b in loaded)


def _fuse(x):
  # The ops run as one compiled program each (gensynth.synth.compiled), from
  # the trace and compilation caches when an earlier command made them.
  # pylint: disable=g-import-not-at-top
  import numpy as np
  from gensynth.synth import blend
  from gensynth.synth import fusion
  from gensynth.synth import io
  # pylint: enable=g-import-not-at-top
  method, n = FLAGS.method, len(x)
  if FLAGS.checkpoint and method != 'learned':
    raise app.UsageError(f'--checkpoint is for --method=learned, not '
                         f'--method={method}.')
  if method == 'learned':
    return _learned(x)
  if method == 'weighted':
    w = [float(v) for v in FLAGS.weights] if FLAGS.weights else [1.0 / n] * n
    if len(w) != n:
      raise app.UsageError(f'--weights has {len(w)} values for {n} inputs.')
    return blend.weighted_blend(x, np.asarray(w, np.float32))
  levels = FLAGS.levels
  if method in ('pyramid', 'poisson'):
    if FLAGS.mask is None:
      raise app.UsageError(f'--method={method} needs --mask.')
    if n != 2:
      raise app.UsageError(f'--mask blends two inputs; got {n}.')
    mask, _ = io.read_image(FLAGS.mask)
    if mask.shape[:2] != x.shape[1:3]:
      raise app.UsageError(f'--mask {FLAGS.mask} is {mask.shape[:2]}, inputs '
                           f'are {x.shape[1:3]}.')
    mask = (mask[..., :1] if mask.shape[-1] < 3 else
            mask[..., :3].mean(-1, keepdims=True))
    if method == 'poisson':
      return blend.poisson_blend(x[1], x[0], mask)
    return blend.multiband_blend(x, blend.two_image_masks(mask),
                                 levels=levels or 6)
  if method == 'multifocus':
    return fusion.multifocus_fusion(x, levels=levels or 5)
  if x.shape[-1] != 3:
    raise app.UsageError('--method=exposure needs RGB inputs.')
  return fusion.exposure_fusion(x, levels=levels)


def _learned(x):
  # pylint: disable=g-import-not-at-top
  import functools
  import jax
  from gensynth.evaluation import runs
  from gensynth.synth import learned
  # pylint: enable=g-import-not-at-top
  if not FLAGS.checkpoint:
    raise app.UsageError('--method=learned needs --checkpoint=WORKDIR (a run '
                         'trained with gensynth/configs/fusion_*.py).')
  model, params, _ = runs.load_fusion(FLAGS.checkpoint)
  if FLAGS.levels is not None:
    model = model.clone(levels=FLAGS.levels)
  return jax.jit(functools.partial(learned.learned_fusion, model=model))(
      params, x)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  if FLAGS.reuse_freed_memory:
    runtime.reuse_freed_memory()
  runtime.enable_compilation_cache()
  # pylint: disable=g-import-not-at-top
  import numpy as np
  from gensynth import errors
  from gensynth.metrics import image as metrics
  from gensynth.synth import io
  # pylint: enable=g-import-not-at-top
  try:
    x, bits = _load(FLAGS.inputs)
    t0 = time.perf_counter()
    out = np.asarray(_fuse(x))
    seconds = time.perf_counter() - t0
  except errors.Error as e:
    raise app.UsageError(str(e)) from e
  out_bits = io.output_bits(FLAGS.bits, [bits], FLAGS.output)
  try:
    io.write_image(FLAGS.output, out, bits=out_bits)
  except errors.Error as e:
    raise app.UsageError(str(e)) from e
  print(f'{FLAGS.method}: fused {len(x)} images of {x.shape[1]}x{x.shape[2]}x'
        f'{x.shape[3]} in {seconds:.3f} s (compile included) -> '
        f'{FLAGS.output} ({out_bits}-bit)')
  if (FLAGS.method in ('exposure', 'learned') and x.shape[-1] == 3 and
      min(x.shape[1:3]) >= 44):
    print(f'  MEF-SSIM = {float(metrics.mef_ssim(x, out)):.4f}')
  if len(x) == 2:
    print(f'  Q^AB/F = {float(metrics.qabf(x[0], x[1], out)):.4f}, '
          f'MI = {float(metrics.mutual_information(x[0], x[1], out)):.4f}')
  print(f'  entropy = {float(metrics.entropy(out)):.3f} bits, '
        f'SF = {float(metrics.spatial_frequency(out)):.2f}, '
        f'SD = {float(metrics.standard_deviation(out)):.2f}')


if __name__ == '__main__':
  app.run(main)
