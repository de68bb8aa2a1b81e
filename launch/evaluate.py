r"""Evaluates the newest checkpoint in --workdir and prints JSON.

  python -m launch.evaluate --workdir=runs/vae_mnist --num_samples=1000
  python -m launch.evaluate --workdir=runs/gan_mnist \
      --classifier=runs/classifier_mnist [--num_generated=10000]

  python -m launch.evaluate --workdir=runs/shapes_text --fidelity \
      --baseline=runs/shapes_class [--num_generated=1000]

VAE: test -ELBO and IWAE NLL. GAN: FID, KID and precision/recall on the
features of a gensynth classifier (and, if conditional, the classifier's
accuracy on samples of each requested class), each next to its real-vs-real
floor (train split vs test split).

--fidelity (GAN or VAE trained on the attribute shapes, or on MNIST digits
with Morpho-MNIST vectors or captions): how well samples obey their
conditions. One sample per test condition (and per held-out-pair
condition). Shapes: kind, colour, size and position are read back from the
pixels. Digits: --classifier reads the digit and thickness, slant, width,
height and area are measured (Pearson r and MAE against the test image the
condition came from; the captions' thin/thick and slant words as
three-way categories). Each is scored beside the same scores on the real
images (the ceiling) and, with --baseline, on a second run scored the same
way (a class-only model: shapes variant 'attributes', gan_mnist.py:cond).
It also reports diversity within a condition: --diversity_samples samples
for each of --diversity_conditions test conditions, beside as many real
images that satisfy the same condition (pixel distance and the spread of
what a caption leaves open on the shapes; classifier-feature distance on
digits), and each ratio generated / real.

  python -m launch.evaluate --workdir=runs/gan_mnist_vector --fidelity \
      --classifier=runs/classifier_mnist --baseline=runs/gan_mnist_cond

The model is rebuilt from workdir/config.json unless --config is given.
"""


from absl import app
from absl import flags
from ml_collections import config_flags

from launch import distributed

flags.DEFINE_string('workdir', None, 'Training workdir with checkpoints.')
config_flags.DEFINE_config_file('config', None, 'Config (default: the one '
                                'saved in --workdir).', lock_config=True)
flags.DEFINE_integer('num_samples', 1000, 'VAE: IWAE samples k per test '
                     'image.')
flags.DEFINE_string('classifier', None, 'GAN: workdir of the gensynth '
                    'classifier whose features the metrics use (default: '
                    'config.eval.classifier).')
flags.DEFINE_integer('num_generated', None, 'GAN: images generated and '
                     'compared with as many test images (default: '
                     'config.eval.num_samples).')
flags.DEFINE_bool('fidelity', False, 'Condition fidelity on the attribute '
                  'shapes instead of the likelihood / FID metrics.')
flags.DEFINE_string('baseline', None, '--fidelity: workdir of a second run '
                    'scored the same way (e.g. a class-only model).')
flags.DEFINE_integer('r_precision_steps', 800, '--fidelity on a text run: '
                     'training steps of the evaluator text-image encoder '
                     'behind R-precision (0: no R-precision).', lower_bound=0)
flags.DEFINE_integer('diversity_conditions', 100, '--fidelity: diversity '
                     'within a condition over this many test conditions (0: '
                     'none).', lower_bound=0)
flags.DEFINE_integer('diversity_samples', 10, '--fidelity: samples drawn, '
                     'and real images taken, per condition for diversity.',
                     lower_bound=2)
flags.DEFINE_float('temperature', 1.0, '--fidelity on a VAE run with an '
                   'autoregressive head: sample its pixels at this '
                   'temperature (1: the model; 0: greedy, the likelier value '
                   'of each pixel).')
flags.DEFINE_float('guidance', 0.0, '--fidelity on a VAE run trained with '
                   'condition dropout (config.loss.cond_dropout): '
                   'classifier-free guidance weight (0: none).')
flags.DEFINE_float('latent_scale', 1.0, '--fidelity, or a GAN run\'s '
                   'metrics: multiply the prior latents by this psi (the '
                   'truncation trick of GANs, the prior temperature of VAEs; '
                   '1: as trained).',
                   lower_bound=0.0)
flags.DEFINE_integer('candidates', 1, '--fidelity, or a GAN run\'s '
                     'metrics: each generated image is the best of this many '
                     'samples by the run\'s discriminator (GAN runs; 1: '
                     'plain samples).', lower_bound=1)
flags.DEFINE_enum('select', 'logit', ['logit', 'match', 'both'], 'With '
                  '--candidates > 1: rank the candidates by D\'s logit, by how '
                  'well each matches its own condition against the other '
                  'rows\' conditions (D\'s projection, '
                  'steps.gan.match_scores), or by their sum.')
flags.DEFINE_enum('fidelity_split', 'test', ['test', 'validation'],
                  '--fidelity on a digits run: score the test conditions '
                  '(the benchmark) or those of the last --num_generated '
                  'training digits (to choose sampling settings).')
flags.DEFINE_integer('chunk_size', 50, 'IWAE samples decoded at once.')
flags.DEFINE_integer('batch_size', None, 'Test images per batch.')
flags.DEFINE_integer('max_examples', None, 'Evaluate only the first N.')
flags.DEFINE_integer('seed', 0, 'Seed of the IWAE samples.')
flags.DEFINE_integer('step', None, 'Checkpoint step (default: the newest).')
flags.DEFINE_string('output', None, 'Also write the JSON here.')
flags.mark_flags_as_required(['workdir'])
FLAGS = flags.FLAGS


def _main():
  from gensynth.train import workdir  # pylint: disable=g-import-not-at-top
  config = (FLAGS.config if FLAGS.config is not None else
            workdir.load_config(FLAGS.workdir))
  if FLAGS.baseline and not FLAGS.fidelity:
    raise app.UsageError('--baseline goes with --fidelity.')
  for name, default in (('temperature', 1.0), ('guidance', 0.0),
                        ('fidelity_split', 'test'), ('latent_scale', 1.0),
                        ('candidates', 1), ('select', 'logit')):
    gan_too = name in ('latent_scale', 'candidates', 'select')
    if FLAGS[name].value != default and not FLAGS.fidelity and not (
        gan_too and config.trainer == 'gan'):
      raise app.UsageError(f'--{name} goes with --fidelity' + (
          ' (or a GAN run\'s metrics).' if gan_too else '.'))
  if FLAGS.fidelity:
    from gensynth.evaluation import conditions  # pylint: disable=g-import-not-at-top
    if config.trainer not in ('gan', 'vae'):
      raise app.UsageError('--fidelity needs a gan or vae run.')
    opts = dict(num_samples=FLAGS.num_generated or 1000, seed=FLAGS.seed,
                r_precision_steps=FLAGS.r_precision_steps,
                diversity_conditions=FLAGS.diversity_conditions,
                diversity_samples=FLAGS.diversity_samples,
                temperature=FLAGS.temperature, guidance=FLAGS.guidance,
                digits_split=FLAGS.fidelity_split,
                latent_scale=FLAGS.latent_scale,
                candidates=FLAGS.candidates, select=FLAGS.select,
                classifier=FLAGS.classifier or config.eval.get('classifier'))
    result = conditions.fidelity(config, FLAGS.workdir, step=FLAGS.step,
                                 **opts)
    result = {'run': result, 'summary': conditions.summary(result)}
    if FLAGS.baseline:
      base = conditions.fidelity(workdir.load_config(FLAGS.baseline),
                                 FLAGS.baseline,
                                 score_as=result['run']['scored_as'],
                                 **dict(opts, guidance=0.0, latent_scale=1.0,
                                        candidates=1, select='logit'))
      result['baseline'] = base
      result['baseline_summary'] = conditions.summary(base)
  elif config.trainer == 'gan':
    from gensynth.evaluation import gan  # pylint: disable=g-import-not-at-top
    classifier = FLAGS.classifier or config.eval.classifier
    if not classifier:
      raise app.UsageError('a GAN is evaluated on classifier features: pass '
                           '--classifier=WORKDIR of a run of '
                           'gensynth/configs/classifier_mnist.py (or similar).')
    result = gan.evaluate(config, FLAGS.workdir, classifier=classifier,
                          num_samples=FLAGS.num_generated,
                          batch_size=FLAGS.batch_size, seed=FLAGS.seed,
                          step=FLAGS.step, latent_scale=FLAGS.latent_scale,
                          candidates=FLAGS.candidates, select=FLAGS.select)
  elif config.trainer == 'vae':
    from gensynth.evaluation import vae  # pylint: disable=g-import-not-at-top
    result = vae.evaluate(config, FLAGS.workdir,
                          num_samples=FLAGS.num_samples,
                          chunk_size=FLAGS.chunk_size,
                          batch_size=FLAGS.batch_size,
                          max_examples=FLAGS.max_examples, seed=FLAGS.seed,
                          step=FLAGS.step)
  else:
    raise app.UsageError(f'config.trainer={config.trainer!r}: launch.evaluate '
                         'handles vae and gan runs.')
  distributed.emit_json(result, FLAGS.output)


main = distributed.script_main(_main)

if __name__ == '__main__':
  app.run(main, flags_parser=distributed.parse_flags)
