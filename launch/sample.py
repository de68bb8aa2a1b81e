r"""Writes sample grids, interpolation strips and latent fusions as PNG.

  python -m launch.sample --workdir=runs/shapes_text --mode=text \
      --prompts="a large blue ring at the bottom;a small green cross"
  python -m launch.sample --workdir=runs/shapes_text --mode=text \
      --prompts="a red disc;a blue square" --combine=interpolate   # or mix
  python -m launch.sample --workdir=runs/shapes_vector --mode=vector \
      --vectors=conds.npy            # or "v1,v2,...;w1,w2,..."
  python -m launch.sample --workdir=runs/gan_mnist_vector --mode=vector \
      --vectors="digit=7,thickness=5;digit=7,thickness=1.5,slant=0.4"
  python -m launch.sample --workdir=runs/gan_mnist --mode=grid
  python -m launch.sample --workdir=runs/gan_mnist --mode=interpolate \
      --method=spherical --num_paths=4 --num_steps=10
  python -m launch.sample --workdir=runs/vae_mnist --mode=fuse \
      --inputs=a.png,b.png --weights=0.5,0.5      # or --test_indices=3,7

The model (GAN or VAE) is rebuilt from workdir/config.json; GANs sample from
their EMA generator. Conditional models draw the classes in --classes
(default: every class). Prints the written paths as JSON.
"""

import os

import numpy as np
from absl import app
from absl import flags

from gensynth import errors
from launch import distributed

flags.DEFINE_string('workdir', None, 'Training workdir with checkpoints.')
flags.DEFINE_enum('mode', 'grid', ['grid', 'interpolate', 'fuse', 'text',
                                   'vector'],
                  'What to write; text/vector: one row per prompt or vector '
                  '(models conditioned on captions or vectors).')
flags.DEFINE_string('prompts', None, "text: captions separated by ';'.")
flags.DEFINE_string('vectors', None, "vector: a .npy file [N, D], rows of "
                    "comma-separated numbers separated by ';', or rows of "
                    "named values (field=value; a one-hot group by its stem, "
                    "e.g. digit=7; fields left out take their training "
                    "mean given the named ones).")
flags.DEFINE_enum('combine', 'none', ['none', 'interpolate', 'mix'],
                  'text/vector: none (a row per condition), interpolate '
                  '(a path between the embeddings of two conditions) or mix '
                  '(rows for each condition and their embeddings mixed with '
                  '--weights).')
flags.DEFINE_enum('unknown_words', 'error', ['error', 'drop'],
                  'text: words the model never saw are an error, or dropped.')
flags.DEFINE_string('output', None, 'Output directory (default: '
                    'WORKDIR/samples).')
flags.DEFINE_integer('step', None, 'Checkpoint step (default: the newest).')
flags.DEFINE_integer('seed', 0, 'Seed of the latents.')
flags.DEFINE_float('guidance', 0.0, 'A VAE trained with condition dropout '
                   '(config.loss.cond_dropout): classifier-free guidance '
                   'weight of its samples (0: none).', lower_bound=0.0)
flags.DEFINE_float('temperature', 1.0, 'A VAE with an autoregressive head: '
                   'draw each pixel from sigmoid(logit / T) (1: the model; 0: '
                   'greedy, the likelier value).', lower_bound=0.0)
flags.DEFINE_float('latent_scale', 1.0, 'Multiply the prior latents by this '
                   'psi (the truncation trick of GANs, the prior temperature '
                   'of VAEs; 1: as trained).', lower_bound=0.0)
flags.DEFINE_integer('candidates', 1, 'A GAN run: each image is the best '
                     'of this many samples by the run\'s discriminator '
                     '(--mode=text, vector or grid; 1: plain samples).',
                     lower_bound=1)
flags.DEFINE_enum('select', 'logit', ['logit', 'match', 'both'], 'With '
                  '--candidates > 1: rank the candidates by D\'s logit, by how '
                  'well each matches its own prompt against the other rows\' '
                  '(D\'s projection; needs two or more different prompts), or '
                  'by their sum.')
flags.DEFINE_integer('zoom', 1, 'Write each pixel as a zoom x zoom block.',
                     lower_bound=1)
flags.DEFINE_list('classes', None, 'Class ids for conditional models.')
flags.DEFINE_integer('per_class', 10, 'grid: samples per class (or per row).')
flags.DEFINE_integer('rows', 8, 'grid: rows for unconditional models.')
flags.DEFINE_enum('method', 'spherical', ['linear', 'spherical'],
                  'interpolate: latent path.')
flags.DEFINE_integer('num_paths', 4, 'interpolate: strips (rows).')
flags.DEFINE_integer('num_steps', 10, 'interpolate: images per strip.')
flags.DEFINE_list('inputs', None, 'fuse/interpolate (VAE): image files.')
flags.DEFINE_list('test_indices', None, 'fuse/interpolate (VAE): test-split '
                  'images instead of --inputs.')
flags.DEFINE_list('weights', None, 'fuse: one weight per input; '
                  'text/vector --combine=mix: one per condition.')
flags.DEFINE_string('mask_dims', None, "fuse: 'a:b' takes latent dims a..b-1 "
                    'from the second input and the rest from the first.')
flags.mark_flags_as_required(['workdir'])
FLAGS = flags.FLAGS


def _ints(values, flag):
  try:
    return [int(v) for v in values]
  except ValueError:
    raise app.UsageError(f'--{flag} takes integers, got {values}.') from None


def _classes(num_classes, default_all=True):
  from gensynth.evaluation import gan  # pylint: disable=g-import-not-at-top
  if not num_classes:
    if FLAGS.classes:
      raise app.UsageError('--classes given for an unconditional model.')
    return None
  if not FLAGS.classes and not default_all:
    return None
  ids = _ints(FLAGS.classes, 'classes') if FLAGS.classes else range(
      num_classes)
  try:
    return gan.check_labels(np.array(list(ids)), num_classes)
  except errors.InputError as e:
    raise app.UsageError(f'--classes: {e}') from None


def _inputs(config, info):
  """[K, H, W, C] images in [0, 1] and their labels from --inputs or the
  test split."""
  from gensynth import data as data_lib  # pylint: disable=g-import-not-at-top
  from gensynth.synth import io  # pylint: disable=g-import-not-at-top
  shape = tuple(info['image_shape'])
  if FLAGS.test_indices:
    test = data_lib.load_split(config.data, 'test')
    idx = _ints(FLAGS.test_indices, 'test_indices')
    if min(idx) < 0 or max(idx) >= len(test):
      raise app.UsageError(f'--test_indices must lie in 0..{len(test) - 1}.')
    return data_lib.preprocess(test.images[idx]), test.labels[idx]
  if not FLAGS.inputs:
    raise app.UsageError(f'--mode={FLAGS.mode} needs --inputs or '
                         '--test_indices.')
  images = []
  for path in FLAGS.inputs:
    try:
      img, _ = io.read_image(path)
    except errors.Error as e:
      raise app.UsageError(f'--inputs: {e}') from None
    if img.shape != shape:
      raise app.UsageError(f'--inputs: {path} is {img.shape[0]}x{img.shape[1]}'
                           f'x{img.shape[2]}; the model takes '
                           f'{shape[0]}x{shape[1]}x{shape[2]} images.')
    images.append(img)
  return np.stack(images), np.zeros(len(images), np.int32)


def _fusion_weights(k, latent_dim):
  if FLAGS.mask_dims:
    if k != 2:
      raise app.UsageError('--mask_dims needs exactly two inputs.')
    try:
      a, b = (int(v) for v in FLAGS.mask_dims.split(':'))
    except ValueError:
      raise app.UsageError(f"--mask_dims={FLAGS.mask_dims!r}: expected "
                           "'a:b'.") from None
    if not 0 <= a < b <= latent_dim:
      raise app.UsageError(f'--mask_dims={a}:{b} must satisfy 0 <= a < b <= '
                           f'latent_dim={latent_dim}.')
    second = np.zeros(latent_dim, np.float32)
    second[a:b] = 1.0
    return None, np.stack([1.0 - second, second])
  weights = np.full(k, 1.0 / k, np.float32)
  if FLAGS.weights:
    try:
      weights = np.array([float(w) for w in FLAGS.weights], np.float32)
    except ValueError:
      raise app.UsageError(f'--weights takes numbers, got {FLAGS.weights}.'
                           ) from None
    if len(weights) != k or np.any(weights < 0) or weights.sum() <= 0:
      raise app.UsageError(f'--weights needs {k} non-negative numbers with a '
                           f'positive sum, got {FLAGS.weights}.')
  return weights, None


def _vectors(model):
  spec = FLAGS.vectors
  if not spec:
    raise app.UsageError('--mode=vector needs --vectors.')
  if '=' in spec:  # named fields: "digit=7,thickness=4.5;digit=1,slant=0.3"
    from gensynth.data import conditions  # pylint: disable=g-import-not-at-top
    if model.spec is None or model.spec['kind'] != 'vector':
      raise errors.InputError('--vectors with named fields: this model is not '
                              'conditioned on vectors.')
    rows = []
    for row in filter(str.strip, spec.split(';')):
      items = [item.partition('=') for item in row.split(',') if item.strip()]
      if any(not eq for _, eq, _ in items):
        raise app.UsageError(f'--vectors={spec!r}: write every value of a '
                             'named row as field=value.')
      rows.append({k.strip(): v.strip() for k, _, v in items})
    return conditions.named_vectors(rows, model.spec)
  if spec.endswith('.npy'):
    if not os.path.isfile(spec):
      raise app.UsageError(f'--vectors: file {spec!r} does not exist.')
    return np.load(spec, allow_pickle=False)
  try:
    return np.array([[float(v) for v in row.split(',')]
                     for row in spec.split(';') if row.strip()], np.float32)
  except ValueError:
    raise app.UsageError(f'--vectors={spec!r}: expected numbers, rows '
                         "separated by ';'.") from None


def _conditioned(model):
  """text/vector modes: (images, columns)."""
  if FLAGS.mode == 'text':
    if not FLAGS.prompts:
      raise app.UsageError("--mode=text needs --prompts='caption;caption'.")
    prompts = [p.strip() for p in FLAGS.prompts.split(';') if p.strip()]
    conds = model.conditions(prompts=prompts, unknown=FLAGS.unknown_words)
  else:
    conds = model.conditions(vectors=_vectors(model))
  if FLAGS.combine == 'interpolate':
    return model.condition_path(FLAGS.seed, conds, num_paths=FLAGS.num_paths,
                                num_steps=FLAGS.num_steps)
  if FLAGS.combine == 'mix':
    weights = [1.0] * len(conds) if not FLAGS.weights else _floats(
        FLAGS.weights, 'weights')
    return model.mix(FLAGS.seed, conds, weights, per_row=FLAGS.per_class)
  return model.conditioned(FLAGS.seed, conds, per_row=FLAGS.per_class)


def _floats(values, flag):
  try:
    return [float(v) for v in values]
  except ValueError:
    raise app.UsageError(f'--{flag} takes numbers, got {values}.') from None


def _main():
  from gensynth.evaluation import sampling  # pylint: disable=g-import-not-at-top
  from gensynth.train import workdir  # pylint: disable=g-import-not-at-top
  config = workdir.load_config(FLAGS.workdir)
  out_dir = FLAGS.output or os.path.join(FLAGS.workdir, 'samples')
  os.makedirs(out_dir, exist_ok=True)
  try:
    model = sampling.load(config, FLAGS.workdir, step=FLAGS.step,
                          guidance=FLAGS.guidance,
                          temperature=FLAGS.temperature,
                          latent_scale=FLAGS.latent_scale,
                          candidates=FLAGS.candidates, select=FLAGS.select)
  except errors.InputError as e:  # a sampling flag the run cannot take
    raise app.UsageError(str(e)) from None
  classes = _classes(model.num_classes, default_all=FLAGS.mode != 'fuse')
  if FLAGS.mode in ('text', 'vector'):
    images, ncols = _conditioned(model)
  elif FLAGS.mode == 'grid':
    images, ncols = model.grid(FLAGS.seed, classes=classes,
                               per_class=FLAGS.per_class, rows=FLAGS.rows)
  elif FLAGS.mode == 'interpolate':
    ends = None
    if model.kind == 'vae' and (FLAGS.inputs or FLAGS.test_indices):
      ends = _inputs(config, model.info)
      if len(ends[0]) != 2:
        raise app.UsageError('interpolating real images needs two inputs.')
    images, ncols = model.interpolate(
        FLAGS.seed, classes=classes, num_paths=FLAGS.num_paths,
        num_steps=FLAGS.num_steps, method=FLAGS.method, ends=ends)
  else:
    if model.kind != 'vae':
      raise app.UsageError('--mode=fuse needs a VAE workdir (a GAN has no '
                           'encoder).')
    inputs, labels = _inputs(config, model.info)
    weights, masks = _fusion_weights(len(inputs), config.model.latent_dim)
    if model.num_classes and FLAGS.inputs and classes is None:
      raise app.UsageError('this VAE is class-conditional: pass --classes '
                           'for images read from files.')
    images, ncols = model.fuse(FLAGS.seed, inputs, labels, weights=weights,
                               masks=masks, classes=classes)
  name = FLAGS.mode if FLAGS.combine == 'none' or FLAGS.mode not in (
      'text', 'vector') else f'{FLAGS.mode}_{FLAGS.combine}'
  path = sampling.write_grid(os.path.join(out_dir, f'{name}.png'),
                             images, ncols, zoom=FLAGS.zoom)
  distributed.emit_json({'mode': FLAGS.mode, 'path': path,
                         'step': model.step, 'shape': list(images.shape)})


main = distributed.script_main(_main)

if __name__ == '__main__':
  app.run(main)
