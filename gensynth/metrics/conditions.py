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
  out = {'num_samples': n, 'found': float(measured['found'].mean())}
  joint = np.ones(n, bool)
  for attr in attributes:
    req = np.asarray(requested[attr])
    agree = categorical_agreement(req, measured[attr], sizes[attr],
                                  named[attr])
    out[f'{attr}_accuracy'] = agree['accuracy']
    out[f'{attr}_per_value'] = agree['per_value']
    joint &= ~named[attr] | (req == measured[attr])
  out['joint_accuracy'] = float(joint.mean())
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
