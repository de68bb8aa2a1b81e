r"""Stitches images on disk into a strip or a grid.

  python -m launch.stitch --mode=concat --direction=horizontal \
      --inputs=a.png,b.png --policy=pad --output=strip.png
  python -m launch.stitch --mode=grid --cols=3 --inputs=... --output=grid.png
  python -m launch.stitch --mode=panorama --inputs=a.jpg,b.jpg,c.jpg \
      --output=pano.png [--blend=multiband|feather|none] [--detector=orb]
"""

import json
import time

from absl import app
from absl import flags

from launch import runtime

# JAX and gensynth are imported inside main(), so that --help and flag errors
# answer without loading them. Keep these equal to gensynth.synth.stitch's
# POLICIES and ALIGNS (tests/launch/test_synth_cli.py checks).
POLICIES = ('pad', 'resize', 'error')
ALIGNS = ('start', 'center', 'end')

flags.DEFINE_enum('mode', None, ['concat', 'grid', 'panorama'],
                  'What to build.')
flags.DEFINE_enum('blend', 'multiband', ['multiband', 'feather', 'none'],
                  'panorama: seam blending.')
flags.DEFINE_enum('detector', 'harris', ['harris', 'orb'],
                  'panorama: keypoints: oriented Harris + rBRIEF on device, '
                  'or scikit-image ORB on the host (slower).')
flags.DEFINE_integer('seed', 0, 'panorama: RANSAC seed.')
flags.DEFINE_float('max_canvas_mpx', 60.0,
                   'panorama: refuse canvases larger than this (Mpx).')
flags.DEFINE_list('inputs', None, 'Comma-separated input image paths.')
flags.DEFINE_enum('direction', 'horizontal', ['horizontal', 'vertical'],
                  'concat: side by side (horizontal) or top to bottom.')
flags.DEFINE_integer('cols', None, 'grid: number of columns.')
flags.DEFINE_enum('policy', 'pad', list(POLICIES),
                  'Mismatched sizes: pad, resize or error.')
flags.DEFINE_enum('align', 'center', list(ALIGNS),
                  'Placement of smaller images when padding.')
flags.DEFINE_integer('spacing', 0, 'Pixels between images.')
flags.DEFINE_float('fill', 0.0, 'Fill value in [0, 1] for padding/spacing.')
flags.DEFINE_string('output', None, 'Output path (.png, .jpg).')
flags.DEFINE_enum('bits', 'auto', ['auto', '8', '16'],
                  'Output bit depth (auto: 16 for a PNG when any input is '
                  '16-bit).')
flags.mark_flags_as_required(['mode', 'inputs', 'output'])
FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  if FLAGS.reuse_freed_memory:
    runtime.reuse_freed_memory()
  runtime.enable_compilation_cache()
  # pylint: disable=g-import-not-at-top
  import jax
  import numpy as np
  from gensynth import errors
  from gensynth.synth import io
  from gensynth.synth import panorama
  from gensynth.synth import stitch
  # pylint: enable=g-import-not-at-top
  try:
    loaded = [io.read_image(p) for p in FLAGS.inputs]
    images = io.harmonise_channels([x for x, _ in loaded])
    bits = io.output_bits(FLAGS.bits, [b for _, b in loaded], FLAGS.output)
    kw = dict(policy=FLAGS.policy, align=FLAGS.align, spacing=FLAGS.spacing,
              fill=FLAGS.fill)
    if FLAGS.mode == 'panorama':
      t0 = time.perf_counter()
      pano = panorama.stitch(images, key=jax.random.key(FLAGS.seed),
                             blend=FLAGS.blend, detector=FLAGS.detector,
                             max_canvas_pixels=FLAGS.max_canvas_mpx * 1e6)
      io.write_image(FLAGS.output, pano.image, bits=bits)
      print(f'panorama: {len(images)} images -> {pano.image.shape[0]}x'
            f'{pano.image.shape[1]} {FLAGS.output} in '
            f'{time.perf_counter() - t0:.2f} s (reference image '
            f'{pano.reference})')
      for pair in pano.pairs:
        print('  pair ' + json.dumps(pair))
      return
    if FLAGS.mode == 'grid':
      if not FLAGS.cols:
        raise app.UsageError('--mode=grid needs --cols.')
      out = stitch.grid(images, cols=FLAGS.cols, **kw)
    elif FLAGS.direction == 'horizontal':
      out = stitch.hconcat(images, **kw)
    else:
      out = stitch.vconcat(images, **kw)
    io.write_image(FLAGS.output, np.asarray(out), bits=bits)
  except errors.Error as e:
    raise app.UsageError(str(e)) from e
  print(f'{FLAGS.mode}: {len(images)} images '
        f'{[x.shape[:2] for x in images]} -> {out.shape[0]}x{out.shape[1]}x'
        f'{out.shape[2]} {FLAGS.output} ({bits}-bit)')


if __name__ == '__main__':
  app.run(main)
