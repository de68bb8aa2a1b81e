"""Condition fidelity: do samples show what their conditions asked for?

Functions compare requested attributes with attributes measured on the
images (e.g. by gensynth.data.shapes.read_attributes):

  categorical_agreement  accuracy (overall, per requested value)
  continuous_agreement   Pearson r and mean absolute error per field
  shapes_fidelity        all of the above for the procedural attribute shapes,
                         per attribute and jointly, counting for text only the
                         attributes each caption names
  digit_fidelity         the same for digits conditioned on Morpho-MNIST
                         conditions: the digit a classifier reads, the
                         captions' thickness and slant words, and r / MAE per
                         morphometric

and how much samples of one condition differ from each other (diversity
within a condition), beside real images that satisfy the same condition:

  group_spread           mean distance between the members of each group
  value_entropy          entropy of the categorical values in each group
  shapes_diversity       both for attribute shapes: pixel distance, the
                         spread of the attributes a caption leaves open,
                         and of the measured centre and radius

All inputs are host arrays; every function returns plain floats and lists
(JSON-ready).
"""

import numpy as np

from gensynth import errors
from gensynth.data import morpho as morpho_lib
from gensynth.data import shapes as shapes_lib

SHAPE_ATTRIBUTES = ('kind', 'colour', 'size', 'position')
_CONTINUOUS = {'red': 6, 'green': 7, 'blue': 8, 'radius': 9, 'x': 10, 'y': 11}


def _pair(requested, measured, name):
  requested, measured = np.asarray(requested), np.asarray(measured)
  if requested.shape != measured.shape or requested.size == 0:
    raise errors.InputError(
        f'{name}: requested {requested.shape} and measured {measured.shape} '
        'must be non-empty and of one shape.')
  return requested, measured


def categorical_agreement(requested, measured, num_values, mask=None):
  """Accuracy of measured vs requested values in 0..num_values-1.

  Rows with mask False (e.g. a caption that does not name the attribute)
  are left out. Returns {'accuracy', 'count', 'per_value'} with per_value[v]
  the accuracy over rows requesting v (None where there are none).
  """
  requested, measured = _pair(requested, measured, 'categorical_agreement')
  keep = np.ones(len(requested), bool) if mask is None else np.asarray(mask)
  r, m = requested[keep], measured[keep]
  if not len(r):
    return {'accuracy': None, 'count': 0, 'per_value': [None] * num_values}
  hit = r == m
  per = [float(hit[r == v].mean()) if np.any(r == v) else None
         for v in range(num_values)]
  return {'accuracy': float(hit.mean()), 'count': int(len(r)),
          'per_value': per}


def continuous_agreement(requested, measured):
  """Pearson r and mean absolute error between requested and measured
  values [N] (r is None where either side is constant)."""
  requested, measured = _pair(requested, measured, 'continuous_agreement')
  a, b = requested.astype(np.float64), measured.astype(np.float64)
  mae = float(np.mean(np.abs(a - b)))
  if a.std() == 0 or b.std() == 0:
    return {'pearson_r': None, 'mae': mae}
  return {'pearson_r': float(np.corrcoef(a, b)[0, 1]), 'mae': mae}


def shapes_fidelity(images, requested, *, mentions=None, attributes=None):
  """Fidelity of attribute-shape images [N, S, S, 3] (float in [0, 1] or
  uint8) to `requested`, a dict of arrays [N] with kind, colour, size,
  position and vector (gensynth.data.shapes.make_attribute_shapes).

  Args:
    mentions: bool [N, 3] (colour, size, position named by the caption):
      text conditions score only named attributes (the kind is always
      named). None: every attribute was requested (vector conditions).
    attributes: which of SHAPE_ATTRIBUTES to score (default all; a class-id
      model asks only for the kind, but scoring all shows what it leaves to
      chance).

  Returns:
    {'<attr>_accuracy', 'joint_accuracy' (every scored and named attribute
    right at once), 'found' (fraction with a readable shape),
    'single_object' (fraction with exactly one shape drawn), with mentions
    'kind_accuracy_position_named'/'_open' (kind accuracy where the caption
    names the position / leaves it open),
    '<field>_r'/'<field>_mae' for the continuous fields (RGB, radius, x, y)
    when mentions is None, and per-value accuracies}.
  """
  measured = shapes_lib.read_attributes(images)
  n = len(measured['kind'])
  attributes = attributes or SHAPE_ATTRIBUTES
  named = {'kind': np.ones(n, bool)}
  for i, attr in enumerate(('colour', 'size', 'position')):
    named[attr] = (np.ones(n, bool) if mentions is None else
                   np.asarray(mentions)[:, i])
  sizes = {'kind': len(shapes_lib.CLASS_NAMES),
           'colour': len(shapes_lib.COLOUR_NAMES),
           'size': len(shapes_lib.SIZE_NAMES),
           'position': len(shapes_lib.POSITION_NAMES)}
  out = {'num_samples': n, 'found': float(measured['found'].mean()),
         # Exactly one shape drawn (every dataset image has one).
         'single_object': float(np.mean(measured['objects'] == 1))}
  joint = np.ones(n, bool)
  for attr in attributes:
    req = np.asarray(requested[attr])
    agree = categorical_agreement(req, measured[attr], sizes[attr],
                                  named[attr])
    out[f'{attr}_accuracy'] = agree['accuracy']
    out[f'{attr}_per_value'] = agree['per_value']
    joint &= ~named[attr] | (req == measured[attr])
  out['joint_accuracy'] = float(joint.mean())
  if mentions is not None and 'kind' in attributes:
    # A caption that leaves the position open is where a generator hedges
    # between places (two shapes, read as another kind).
    hit = np.asarray(requested['kind']) == measured['kind']
    for label, rows in (('named', named['position']),
                        ('open', ~named['position'])):
      out[f'kind_accuracy_position_{label}'] = (
          float(hit[rows].mean()) if rows.any() else None)
  if mentions is None and 'vector' in requested:
    req = np.asarray(requested['vector'])
    for field, col in _CONTINUOUS.items():
      agree = continuous_agreement(req[:, col], measured['vector'][:, col])
      out[f'{field}_r'], out[f'{field}_mae'] = agree['pearson_r'], agree['mae']
  return out


def digit_fidelity(requested_digits, measured_digits, requested_metrics,
                   measured_metrics):
  """Fidelity of digits to Morpho-MNIST conditions.

  Args:
    requested_digits: int [N], the digit each condition asks for.
    measured_digits: int [N], the digit a classifier reads on each image.
    requested_metrics: [N, 5] morphometrics asked for (gensynth.data.morpho
      FIELDS; for captions, those of the image the caption describes).
    measured_metrics: [N, 5] morphometrics measured on the images.

  Returns:
    {'digit_accuracy', 'digit_per_value', 'thickness_word_accuracy' and
    'slant_word_accuracy' (the caption's three-way category: thin /
    middling / thick, left / upright / right), 'joint_accuracy' (digit and
    both words right), '<field>_r' and '<field>_mae' per morphometric}.
  """
  req_m = np.asarray(requested_metrics, np.float64)
  got_m = np.asarray(measured_metrics, np.float64)
  if req_m.ndim != 2 or req_m.shape[1] != len(morpho_lib.FIELDS):
    raise errors.InputError(
        f'digit_fidelity: morphometrics must be [N, {len(morpho_lib.FIELDS)}] '
        f'({", ".join(morpho_lib.FIELDS)}), got shape {req_m.shape}.')
  req_m, got_m = _pair(req_m, got_m, 'digit_fidelity')
  digits = categorical_agreement(requested_digits, measured_digits, 10)
  req_c, got_c = morpho_lib.categories(req_m), morpho_lib.categories(got_m)
  hit = np.asarray(requested_digits) == np.asarray(measured_digits)
  out = {'num_samples': len(req_m), 'digit_accuracy': digits['accuracy'],
         'digit_per_value': digits['per_value']}
  for i, name in enumerate(('thickness_word', 'slant_word')):
    agree = categorical_agreement(req_c[:, i], got_c[:, i], 3)
    out[f'{name}_accuracy'] = agree['accuracy']
    out[f'{name}_per_value'] = agree['per_value']
    hit &= req_c[:, i] == got_c[:, i]
  out['joint_accuracy'] = float(hit.mean())
  for i, field in enumerate(morpho_lib.FIELDS):
    agree = continuous_agreement(req_m[:, i], got_m[:, i])
    out[f'{field}_r'], out[f'{field}_mae'] = agree['pearson_r'], agree['mae']
  return out


def caption_describes(requested, mentions):
  """bool [N, N]: [i, j] is True where caption j (its kind, and the colour,
  size and position it names per mentions[j]) is true of image i, whose
  attributes are requested[...][i] (attribute-shapes captions)."""
  kind = np.asarray(requested['kind'])
  out = kind[:, None] == kind[None, :]
  for m, attr in enumerate(('colour', 'size', 'position')):
    a = np.asarray(requested[attr])
    named = np.asarray(mentions)[:, m]
    out &= ~named[None, :] | (a[:, None] == a[None, :])
  return out


def captions_compatible(requested, mentions):
  """bool [N, N]: [i, j] is True where captions i and j can both be true of
  one image: the same kind, and the same value of every colour, size and
  position that both name (attribute-shapes captions; mentions[i] says
  what caption i names). A generated image is asked only for what its
  caption names, so only a caption that contradicts that (False here) is
  false of every faithful sample."""
  kind = np.asarray(requested['kind'])
  out = kind[:, None] == kind[None, :]
  mentions = np.asarray(mentions, bool)
  for m, attr in enumerate(('colour', 'size', 'position')):
    a = np.asarray(requested[attr])
    both = mentions[:, m][:, None] & mentions[:, m][None, :]
    out &= ~both | (a[:, None] == a[None, :])
  return out


def group_spread(groups):
  """Diversity within groups of feature vectors.

  Args:
    groups: float [M, S, D]: M groups (e.g. conditions) of S >= 2 vectors
      (e.g. samples, or real images that satisfy the condition).

  Returns:
    {'mean_distance': the mean over groups of the mean Euclidean distance
    between a group's S (S - 1) / 2 pairs, 'per_group': those M means}.
  """
  g = np.asarray(groups, np.float64)
  if g.ndim != 3 or g.shape[0] < 1 or g.shape[1] < 2:
    raise errors.InputError(
        f'group_spread needs groups [M, S, D] with M >= 1 and S >= 2, got '
        f'shape {g.shape}.')
  sq = np.sum(g**2, -1)
  d2 = sq[:, :, None] + sq[:, None, :] - 2 * np.einsum('msd,mtd->mst', g, g)
  rows, cols = np.triu_indices(g.shape[1], 1)
  per = np.sqrt(np.maximum(d2[:, rows, cols], 0.0)).mean(-1)
  return {'mean_distance': float(per.mean()), 'per_group': per.tolist()}


def value_entropy(values, num_values):
  """Plug-in entropy in nats of the values in each row: int [M, S] with
  values in 0..num_values-1 -> float [M] (0: every value in the row alike;
  log(min(S, num_values)) at most)."""
  v = np.asarray(values)
  if v.ndim != 2 or v.shape[1] < 1:
    raise errors.InputError(
        f'value_entropy needs values [M, S], got shape {v.shape}.')
  if v.size and (v.min() < 0 or v.max() >= num_values):
    raise errors.InputError(
        f'value_entropy: values must lie in 0..{num_values - 1}, got '
        f'{v.min()}..{v.max()}.')
  p = (v[..., None] == np.arange(num_values)).mean(1)
  with np.errstate(divide='ignore', invalid='ignore'):
    return -np.sum(np.where(p > 0, p * np.log(p), 0.0), -1)


_OPEN = ('colour', 'size', 'position')


def shapes_diversity(generated, real, open_mask=None):
  """Diversity within a condition for attribute shapes.

  Args:
    generated: images [M, S, H, W, 3] (uint8 or float in [0, 1]): S samples
      for each of M conditions.
    real: images of the same shape: for each condition, S real images that
      satisfy it (the reference: how much the data itself varies there).
    open_mask: bool [M, 3]: which of colour, size and position each condition
      leaves open (a caption that does not name them); None: none open
      (vector conditions).

  Returns:
    {'generated': scores, 'real': scores, '<score>_ratio': generated / real}
    with scores 'pixel_distance' (mean RMS pixel difference in [0, 1]
    between two images of one condition), '<attr>_open_entropy' (entropy in
    nats of the read-back attribute over a condition's images, averaged over
    the conditions that leave it open; None if none does) and 'x_std',
    'y_std', 'radius_std' (spread of the read-back centre and radius within
    a condition, as fractions of the side).
  """
  gen, ref = np.asarray(generated), np.asarray(real)
  if gen.ndim != 5 or gen.shape[-1] != 3 or gen.shape != ref.shape or \
      gen.shape[1] < 2:
    raise errors.InputError(
        'shapes_diversity needs generated and real images of one shape '
        f'[M, S >= 2, H, W, 3], got {gen.shape} and {ref.shape}.')
  m, s = gen.shape[:2]
  opened = (np.zeros((m, 3), bool) if open_mask is None else
            np.asarray(open_mask, bool))
  if opened.shape != (m, 3):
    raise errors.InputError(
        f'shapes_diversity: open_mask must be [{m}, 3] (colour, size, '
        f'position), got shape {opened.shape}.')
  sizes = {'colour': len(shapes_lib.COLOUR_NAMES),
           'size': len(shapes_lib.SIZE_NAMES),
           'position': len(shapes_lib.POSITION_NAMES)}
  out = {}
  for side, x in (('generated', gen), ('real', ref)):
    unit = x.astype(np.float64) / 255.0 if x.dtype == np.uint8 else \
        x.astype(np.float64)
    flat = unit.reshape(m, s, -1)
    scores = {'pixel_distance': group_spread(flat)['mean_distance'] /
                                np.sqrt(flat.shape[-1])}
    read = shapes_lib.read_attributes(x.reshape((m * s,) + x.shape[2:]))
    for i, attr in enumerate(_OPEN):
      rows = opened[:, i]
      scores[f'{attr}_open_entropy'] = (
          float(value_entropy(read[attr].reshape(m, s)[rows],
                              sizes[attr]).mean()) if rows.any() else None)
    vec = read['vector'].reshape(m, s, -1)
    for field in ('radius', 'x', 'y'):
      col = _CONTINUOUS[field]
      scores[f'{field}_std'] = float(vec[..., col].std(1).mean())
    out[side] = scores
  for k, v in out['generated'].items():
    r = out['real'][k]
    out[f'{k}_ratio'] = None if v is None or not r else float(v / r)
  return out
