"""Condition fidelity of a trained GAN or VAE: on the attribute shapes, or
on digits conditioned on Morpho-MNIST vectors or captions.

Shapes: for each evaluated split (test, and 'heldout' when the run held colour x
kind pairs out of training) the model draws one sample per test condition;
gensynth.data.shapes.read_attributes reads kind, colour, size and position
back, and gensynth.metrics.conditions scores them against what was asked.
The same scores on the split's real images are the ceiling; a class-only
model (variant 'attributes') scored the same way is the baseline.

Digits (an MNIST run: IDX files, or TFDS with condition_key
'morphometrics'): one sample per test condition; a gensynth classifier reads
the digit, gensynth.data.morpho measures thickness, slant, width, height and
area, and gensynth.metrics.conditions.digit_fidelity scores them against
the digit and measurements of the test image the condition came from. A
class-only run (gan_mnist.py:cond) scored the same way is the baseline: it
is asked for the digit only.
"""

import numpy as np

from gensynth import data as data_lib
from gensynth import errors
from gensynth.data import morpho
from gensynth.evaluation import features
from gensynth.evaluation import runs
from gensynth.evaluation import sampling
from gensynth.evaluation import text_match
from gensynth.metrics import conditions as metrics
from gensynth.metrics import generative


def is_digits(config):
  """Whether `config` trains on MNIST-like digits with Morpho-MNIST
  conditions (or on their class ids: the baseline)."""
  data = config.data
  return data.source == 'idx' or data.get('condition_key') == 'morphometrics' \
      or (data.source == 'tfds' and data.get('name') == 'mnist')


def _check(config):
  data = config.data
  if data.source != 'shapes' or not (
      data.shapes_attributes or data.holdout_pairs or
      data.condition != 'label'):
    raise errors.InputError(
        'condition fidelity reads attributes back from the procedural '
        'attribute shapes; this run trained on '
        f'config.data.source={data.source!r} without them (train with '
        'gensynth/configs/{vae,gan}_shapes.py:text, :vector or :attributes).')


def splits_of(config):
  return ('test', 'heldout') if config.data.holdout_pairs else ('test',)


def fidelity(config, workdir, *, num_samples=1000, seed=0, step=None,
             score_as=None, r_precision_steps=800, classifier=None):
  """{split: {'generated': scores, 'real': scores}} for a trained run.

  Shapes runs and digit runs (`is_digits`; these need `classifier`, the
  workdir of a gensynth classifier that reads the digit, and are scored on
  split 'test' by `digit_fidelity`).

  Args:
    score_as: 'text' scores only the attributes each test caption names (as
      for a text-conditioned run); 'vector' scores all of them and the
      continuous fields. Default: the run's own condition ('label' runs
      score all attributes, as 'vector' without continuous fields).
    r_precision_steps: text runs also get R-precision from an evaluator
      dual encoder trained this many steps on the real training pairs
      (gensynth.evaluation.text_match); 0 skips it. Shapes only.
  """
  if is_digits(config):
    return digit_fidelity(config, workdir, classifier=classifier,
                          num_samples=num_samples, seed=seed, step=step)
  _check(config)
  model = sampling.load(config, workdir, step=step)
  kind = model.info['condition']['kind'] if config.model.conditional else None
  score_as = score_as or kind
  out = {'step': model.step, 'condition': kind or 'none',
         'scored_as': score_as}
  splits = splits_of(config)
  sources = runs.load_splits(config, model.info, ('train',) + splits)
  matcher = None
  if kind == 'text' and r_precision_steps:
    train = sources[0]
    matcher = text_match.train(train.images, train.conditions,
                               model.vocab.size, steps=r_precision_steps,
                               seed=seed)
  for name, src in zip(splits, sources[1:]):
    sub = src.subset(slice(0, min(num_samples, len(src))))
    attrs = dict(sub.attributes)
    if score_as != 'vector':
      attrs.pop('vector')
    conds = sub.conditions if model.spec is not None else sub.labels
    images = model.generate(seed, conds)
    mentions = attrs['mentions'] if score_as == 'text' else None
    out[name] = {
        'generated': metrics.shapes_fidelity(images, attrs,
                                             mentions=mentions),
        'real': metrics.shapes_fidelity(sub.images, attrs, mentions=mentions)}
    if matcher is not None:
      texts = text_match.embed(*matcher, tokens=sub.conditions)
      k = min(100, len(sub))
      describes = metrics.caption_describes(attrs, attrs['mentions'])
      # Candidates only among captions false of the condition (fewer than
      # k when a small split has fewer such captions for some row).
      k_mis = min(k, 1 + int((~describes).sum(1).min()))
      for side, x in (('generated', images), ('real', sub.images)):
        emb = text_match.embed(*matcher, images=x)
        out[name][side]['r_precision'] = text_match.r_precision(
            emb, texts, num_candidates=k, seed=seed)
        out[name][side]['r_precision_mismatched'] = (
            text_match.r_precision(emb, texts, num_candidates=k_mis,
                                   seed=seed, describes=describes)
            if k_mis >= 2 else None)
        out[name][side]['r_precision_candidates'] = k
        out[name][side]['r_precision_mismatched_candidates'] = k_mis
  return out


def digit_fidelity(config, workdir, *, classifier, num_samples=1000, seed=0,
                   step=None):
  """Fidelity of a digits run to its test conditions (see the module doc)."""
  if not classifier:
    raise errors.InputError(
        'condition fidelity on digits reads each sample\'s digit with a '
        'gensynth classifier: pass --classifier=WORKDIR of a run of '
        'gensynth/configs/classifier_mnist.py.')
  model = sampling.load(config, workdir, step=step)
  kind = model.info['condition']['kind'] if config.model.conditional else None
  if kind is None:
    raise errors.InputError(
        f'{workdir!r} holds an unconditional run: there is no condition to '
        'obey (the class-only baseline is gan_mnist.py:cond).')
  train, src = runs.load_splits(config, model.info, ('train', 'test'))
  n = min(num_samples, len(src))
  sub = src.subset(slice(0, n))
  conds = sub.conditions if model.spec is not None else sub.labels
  images = model.generate(seed, conds)
  reader = features.ClassifierFeatures(classifier)
  requested = morpho.morphometrics(sub.images)
  out = {'step': model.step, 'condition': kind, 'scored_as': kind}
  out['test'] = {}
  feats = {}
  for side, x in (('generated', images),
                  ('real', data_lib.preprocess(sub.images))):
    feats[side], logits = reader.features_and_logits(x)
    out['test'][side] = metrics.digit_fidelity(
        sub.labels, logits.argmax(-1), requested, morpho.morphometrics(x))
  # FID of the samples against the test digits whose conditions they were
  # asked for, next to its floor: as many training digits against the same
  # test digits (gensynth.evaluation.gan.generative_metrics' floor).
  pick = np.random.default_rng(0).choice(len(train), min(n, len(train)),
                                         replace=False)
  f_train = reader(data_lib.preprocess(train.images[np.sort(pick)]))
  out['test']['generated']['fid'] = generative.fid(feats['generated'],
                                                   feats['real'])
  out['test']['real']['fid'] = generative.fid(f_train, feats['real'])
  out['test']['fid_over_floor'] = out['test']['generated']['fid'] / max(
      out['test']['real']['fid'], 1e-12)
  return out


def summary(record):
  """The headline numbers of a `fidelity` record: per split, generated and
  real accuracy per attribute and jointly."""
  lines = {}
  for split in ('test', 'heldout'):
    if split not in record:
      continue
    for side in ('generated', 'real'):
      scores = record[split][side]
      lines[f'{split}_{side}'] = {
          k: (None if v is None else round(float(v), 4))
          for k, v in scores.items()
          if k.endswith(('_accuracy', '_r', '_mae')) or
          k in ('found', 'fid', 'r_precision', 'r_precision_mismatched')}
  return lines
