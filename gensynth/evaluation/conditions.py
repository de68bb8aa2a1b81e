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

Diversity within a condition (`diversity_conditions` > 0): for the first M
test conditions the model draws S samples each, and S real images that
satisfy the same condition form the reference: on the shapes, images the
caption is true of (text), the nearest attribute vectors (vector) or images
of the class (class ids); on digits, images with the identical caption, the
nearest standardised morphometry vectors, or the class. Shapes score pixel
distance and the spread of the attributes a caption leaves open; digits the
distance between classifier features (gensynth.metrics.conditions).
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


def _pool_groups(rows, size, rng):
  """[M', S] indices: for each row of the bool candidate matrix [M, P] with
  at least `size` candidates, `size` of them at random; and the kept rows."""
  keep = np.flatnonzero(rows.sum(1) >= size)
  idx = np.stack([rng.choice(np.flatnonzero(rows[m]), size, replace=False)
                  for m in keep]) if len(keep) else np.zeros((0, size), int)
  return idx, keep


def _nearest(requested, pool, size):
  """[M, S] indices of the `size` pool vectors nearest each requested vector
  (each component scaled by the pool's standard deviation)."""
  pool = np.asarray(pool, np.float64)
  scale = np.where(pool.std(0) > 0, pool.std(0), 1.0)
  a, b = np.asarray(requested, np.float64) / scale, pool / scale
  d = (a**2).sum(1)[:, None] + (b**2).sum(1)[None] - 2 * a @ b.T  # [M, P]
  return np.argsort(d, axis=1)[:, :size]


def _repeat_generate(model, seed, conds, size):
  """[M, S, H, W, C] samples: S for each of the M conditions."""
  conds = np.asarray(conds)
  images = model.generate(seed + 1, np.repeat(conds, size, axis=0))
  return images.reshape((len(conds), size) + images.shape[1:])


def _shapes_diversity(model, conds, attrs, pool_images, pool_attrs, *,
                     score_as, conditions, samples, seed):
  """Diversity within a condition on the attribute shapes (module doc)."""
  m = min(conditions, len(conds))
  rng = np.random.default_rng([seed, 23])
  if score_as == 'vector':
    idx, keep, open_mask = (_nearest(attrs['vector'][:m], pool_attrs['vector'],
                                     samples), np.arange(m), None)
  else:
    named = (np.asarray(attrs['mentions'][:m], bool) if score_as == 'text'
             else np.zeros((m, 3), bool))
    rows = attrs['kind'][:m, None] == pool_attrs['kind'][None]
    for i, attr in enumerate(('colour', 'size', 'position')):
      rows &= ~named[:, i:i + 1] | (
          attrs[attr][:m, None] == pool_attrs[attr][None])
    idx, keep = _pool_groups(rows, samples, rng)
    open_mask = ~named[keep]
  if not len(keep):
    return None
  generated = _repeat_generate(model, seed, np.asarray(conds)[keep], samples)
  out = metrics.shapes_diversity(generated, pool_images[idx], open_mask)
  return dict(out, conditions=int(len(keep)), samples_per_condition=samples)


def splits_of(config):
  return ('test', 'heldout') if config.data.holdout_pairs else ('test',)


def fidelity(config, workdir, *, num_samples=1000, seed=0, step=None,
             score_as=None, r_precision_steps=800, classifier=None,
             diversity_conditions=100, diversity_samples=10, temperature=1.0,
             guidance=0.0, digits_split='test', latent_scale=1.0,
             candidates=1, select='logit'):
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
    diversity_conditions, diversity_samples: diversity within a condition
      over this many test conditions with this many samples each (module
      doc); 0 conditions skips it.
    temperature: a VAE run's autoregressive head samples at this temperature
      (steps.vae.decode_latents: 1 samples the model, 0 is greedy).
    guidance: classifier-free guidance weight of a VAE trained with
      condition dropout (steps.vae.decode_latents; 0: none).
    latent_scale: psi, the prior latents' scale (sampling.load; 1: none).
    candidates: a GAN run's images are each the best of this many samples by
      its discriminator (sampling.load; 1: plain samples), ranked by
      `select` (steps.gan.best_of: 'logit', 'match' or 'both').
    digits_split: a digits run is scored on 'test' (the benchmark) or on
      'validation': the conditions and images of the last `num_samples`
      training digits, for choosing sampling settings without the test
      split (FID's floor then takes other training digits).
  """
  if diversity_conditions and diversity_samples < 2:
    raise errors.InputError(
        f'diversity_samples={diversity_samples}: diversity within a '
        'condition compares samples pairwise and needs at least 2.')
  if is_digits(config):
    return digit_fidelity(config, workdir, classifier=classifier,
                          num_samples=num_samples, seed=seed, step=step,
                          diversity_conditions=diversity_conditions,
                          diversity_samples=diversity_samples,
                          temperature=temperature, guidance=guidance,
                          split=digits_split, latent_scale=latent_scale,
                          candidates=candidates, select=select)
  if digits_split != 'test':
    raise errors.InputError(
        f'digits_split={digits_split!r} applies to digits runs; a shapes run '
        'is scored on a validation split by drawing the shapes from another '
        'seed (--config.data.shapes_seed=10).')
  _check(config)
  model = sampling.load(config, workdir, step=step, temperature=temperature,
                        guidance=guidance, latent_scale=latent_scale,
                        candidates=candidates, select=select)
  kind = model.info['condition']['kind'] if config.model.conditional else None
  score_as = score_as or kind
  out = {'step': model.step, 'condition': kind or 'none',
         'scored_as': score_as}
  if model.kind == 'vae':
    out.update(temperature=temperature, guidance=guidance)
  out['latent_scale'] = latent_scale
  if candidates != 1:
    out['candidates'] = candidates
    out['select'] = select
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
      # 'mismatched': candidates only among captions false of the real
      # image the condition came from (its hidden attributes included);
      # 'contradicting': only among captions that contradict the condition
      # itself, false of every image that obeys it. A caption that leaves
      # the position open is obeyed by a sample at any place, and the first
      # protocol then counts a caption naming the sample's own place as a
      # wrong answer; the second does not (BUILD_NOTES, issue 19, twelfth
      # session). Fewer than k candidates when a small split has fewer such
      # captions for some row.
      protocols = {
          'mismatched': metrics.caption_describes(attrs, attrs['mentions']),
          'contradicting': metrics.captions_compatible(attrs,
                                                       attrs['mentions'])}
      for side, x in (('generated', images), ('real', sub.images)):
        emb = text_match.embed(*matcher, images=x)
        out[name][side]['r_precision'] = text_match.r_precision(
            emb, texts, num_candidates=k, seed=seed)
        out[name][side]['r_precision_candidates'] = k
        for protocol, describes in protocols.items():
          k_mis = min(k, 1 + int((~describes).sum(1).min()))
          out[name][side][f'r_precision_{protocol}'] = (
              text_match.r_precision(emb, texts, num_candidates=k_mis,
                                     seed=seed, describes=describes)
              if k_mis >= 2 else None)
          out[name][side][f'r_precision_{protocol}_candidates'] = k_mis
    if diversity_conditions:
      pool = sources[0]
      pool_attrs = {k: np.concatenate([pool.attributes[k], src.attributes[k]])
                    for k in ('kind', 'colour', 'size', 'position', 'vector')}
      out[name]['diversity'] = _shapes_diversity(
          model, conds, sub.attributes,
          np.concatenate([pool.images, src.images]), pool_attrs,
          score_as=score_as, conditions=diversity_conditions,
          samples=diversity_samples, seed=seed)
  return out


def digit_fidelity(config, workdir, *, classifier, num_samples=1000, seed=0,
                   step=None, diversity_conditions=100, diversity_samples=10,
                   temperature=1.0, guidance=0.0, split='test',
                   latent_scale=1.0, candidates=1, select='logit'):
  """Fidelity of a digits run to its test conditions (see the module doc),
  or with split='validation' to those of the last `num_samples` training
  digits."""
  if split not in ('test', 'validation'):
    raise errors.InputError(
        f'split={split!r}: digits are scored on test or validation.')
  if not classifier:
    raise errors.InputError(
        'condition fidelity on digits reads each sample\'s digit with a '
        'gensynth classifier: pass --classifier=WORKDIR of a run of '
        'gensynth/configs/classifier_mnist.py.')
  model = sampling.load(config, workdir, step=step, temperature=temperature,
                        guidance=guidance, latent_scale=latent_scale,
                        candidates=candidates, select=select)
  kind = model.info['condition']['kind'] if config.model.conditional else None
  if kind is None:
    raise errors.InputError(
        f'{workdir!r} holds an unconditional run: there is no condition to '
        'obey (the class-only baseline is gan_mnist.py:cond).')
  train, src = runs.load_splits(config, model.info, ('train', 'test'))
  n = min(num_samples, len(src))
  sub, rows = src.subset(slice(0, n)), f'test[0:{n}]'
  if split == 'validation':
    n = min(num_samples, len(train) // 2)
    sub = train.subset(slice(len(train) - n, len(train)))
    rows = f'train[{len(train) - n}:{len(train)}]'
    train = train.subset(slice(0, len(train) - n))
  conds = sub.conditions if model.spec is not None else sub.labels
  images = model.generate(seed, conds)
  reader = features.ClassifierFeatures(classifier)
  requested = morpho.morphometrics(sub.images)
  out = {'step': model.step, 'condition': kind, 'scored_as': kind}
  if model.kind == 'vae':
    out.update(temperature=temperature, guidance=guidance)
  out['latent_scale'] = latent_scale
  if candidates != 1:
    out['candidates'] = candidates
    out['select'] = select
  out[split] = {'rows': rows}  # the digits whose conditions were asked
  feats = {}
  for side, x in (('generated', images),
                  ('real', data_lib.preprocess(sub.images))):
    feats[side], logits = reader.features_and_logits(x)
    out[split][side] = metrics.digit_fidelity(
        sub.labels, logits.argmax(-1), requested, morpho.morphometrics(x))
  # FID of the samples against the digits whose conditions they were asked
  # for, next to its floor: as many (other) training digits against the same
  # digits (gensynth.evaluation.gan.generative_metrics' floor).
  pick = np.random.default_rng(0).choice(len(train), min(n, len(train)),
                                         replace=False)
  f_train = reader(data_lib.preprocess(train.images[np.sort(pick)]))
  out[split]['generated']['fid'] = generative.fid(feats['generated'],
                                                  feats['real'])
  out[split]['real']['fid'] = generative.fid(f_train, feats['real'])
  out[split]['fid_over_floor'] = out[split]['generated']['fid'] / max(
      out[split]['real']['fid'], 1e-12)
  if diversity_conditions:
    out[split]['diversity'] = _digit_diversity(
        model, kind, conds, train, reader, conditions=diversity_conditions,
        samples=diversity_samples, seed=seed)
  return out


def _digit_diversity(model, kind, conds, pool, reader, *, conditions,
                     samples, seed):
  """Diversity within a condition on digits (module doc): the mean
  distance between classifier features of one condition's samples, and of
  as many training digits with the same condition."""
  m = min(conditions, len(conds))
  conds = np.asarray(conds)[:m]
  rng = np.random.default_rng([seed, 23])
  if kind == 'vector':
    idx, keep = _nearest(conds, pool.conditions, samples), np.arange(m)
  else:
    other = pool.labels if kind == 'label' else pool.conditions
    rows = (conds.reshape(m, -1)[:, None] ==
            np.asarray(other).reshape(len(other), -1)[None]).all(-1)
    idx, keep = _pool_groups(rows, samples, rng)
  if not len(keep):
    return None
  generated = _repeat_generate(model, seed, conds[keep], samples)
  shape = (len(keep), samples, -1)
  gen = reader(generated.reshape((-1,) + generated.shape[2:]))
  real = reader(data_lib.preprocess(pool.images[idx.reshape(-1)]))
  spread = {side: metrics.group_spread(np.reshape(f, shape))['mean_distance']
            for side, f in (('generated', gen), ('real', real))}
  return {'generated': {'feature_distance': spread['generated']},
          'real': {'feature_distance': spread['real']},
          'feature_distance_ratio': spread['generated'] / max(
              spread['real'], 1e-12),
          'conditions': int(len(keep)), 'samples_per_condition': samples}


def summary(record):
  """The headline numbers of a `fidelity` record: per split, generated and
  real accuracy per attribute and jointly."""
  lines = {}
  for split in ('test', 'heldout', 'validation'):
    if split not in record:
      continue
    for side in ('generated', 'real'):
      scores = record[split][side]
      lines[f'{split}_{side}'] = {
          k: (None if v is None else round(float(v), 4))
          for k, v in scores.items()
          if k.endswith(('_accuracy', '_r', '_mae')) or
          k in ('found', 'single_object', 'fid', 'r_precision',
                'r_precision_mismatched', 'r_precision_contradicting')}
    div = record[split].get('diversity')
    if div:
      lines[f'{split}_diversity'] = {
          k: (None if v is None else round(float(v), 4))
          for k, v in div.items() if k.endswith('_ratio')}
  return lines
