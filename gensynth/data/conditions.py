"""Conditions beside the images: what each kind is and how text is tokenised.

A condition is one array per split, row i belonging to image i:
  label   int32 [N]      class ids (ArraySource.labels; no extra array)
  vector  float32 [N, D] measured attributes, an embedding from any encoder
  text    str [N]        a caption per image; `Vocabulary` turns captions
                         into int32 token ids [N, L] (0 = padding)

`spec` dicts describe a split's condition for the model builders and are
saved in a run's info.json, so sampling and evaluation rebuild the same
encoder (and the same vocabulary) without the training data.
"""

import dataclasses
import re

import numpy as np

from gensynth import errors

KINDS = ('label', 'vector', 'text')
UNKNOWN_POLICIES = ('error', 'drop')
PAD = '<pad>'
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def words_of(text):
  """Lower-cased words of `text` (letters, digits, inner apostrophes); all
  other characters separate words."""
  return _WORD.findall(str(text).lower())


@dataclasses.dataclass(frozen=True)
class Vocabulary:
  """Word <-> id table built from training captions; id 0 is padding.

  Unknown-word policy (`encode(..., unknown=)`): 'error' raises an
  InputError naming the unknown words and the known ones; 'drop' leaves
  them out, as if the caption had not named them. The shapes captions
  leave attributes out at random, so a dropped word there means
  "unspecified", which the model has learned.
  """
  words: tuple
  max_len: int

  @classmethod
  def build(cls, captions, *, max_len=0):
    """The sorted set of words in `captions`; max_len 0: the longest."""
    tokenised = [words_of(c) for c in captions]
    longest = max((len(t) for t in tokenised), default=0)
    if not longest:
      raise errors.DataError('the training captions hold no words.')
    if max_len and longest > max_len:
      raise errors.DataError(
          f'a training caption has {longest} words, more than '
          f'config.data.text_max_len={max_len}; raise it (0 = the longest).')
    return cls(words=tuple(sorted({w for t in tokenised for w in t})),
               max_len=int(max_len or longest))

  @property
  def size(self):
    """Number of ids, padding included."""
    return len(self.words) + 1

  def encode(self, captions, *, unknown='error', allow_empty=False):
    """int32 [N, max_len] token ids of `captions` (a str or a sequence).

    allow_empty: a caption left without known words encodes as all padding
    (for data splits) instead of raising.
    """
    if unknown not in UNKNOWN_POLICIES:
      raise errors.InputError(f'unknown-word policy {unknown!r}; expected one '
                              f'of {UNKNOWN_POLICIES}.')
    if isinstance(captions, str):
      captions = [captions]
    index = {w: i + 1 for i, w in enumerate(self.words)}
    out = np.zeros((len(captions), self.max_len), np.int32)
    for row, text in enumerate(captions):
      words = words_of(text)
      missing = [w for w in words if w not in index]
      if missing and unknown == 'error':
        raise errors.InputError(
            f'caption {text!r}: words {missing} are not in the vocabulary '
            f'the model was trained with; known words: {", ".join(self.words)}'
            " (or pass unknown='drop' / --unknown_words=drop to leave them "
            'out).')
      ids = [index[w] for w in words if w in index]
      if not ids and not allow_empty:
        raise errors.InputError(
            f'caption {text!r} holds no known word; known words: '
            f'{", ".join(self.words)}.')
      if len(ids) > self.max_len:
        raise errors.InputError(
            f'caption {text!r} has {len(ids)} words; the model reads at most '
            f'{self.max_len}.')
      out[row, :len(ids)] = ids
    return out

  def decode(self, ids):
    """Captions (str) of token ids [N, L]."""
    return [' '.join(self.words[i - 1] for i in row if i)
            for row in np.asarray(ids)]

  def to_json(self):
    return {'words': list(self.words), 'max_len': self.max_len}

  @classmethod
  def from_json(cls, record):
    return cls(words=tuple(record['words']), max_len=int(record['max_len']))


# Vector specs up to this width keep the training covariance (dim^2 floats
# in info.json).
MAX_COV_DIM = 64


def spec_of(kind, conditions=None, *, num_classes=0, vocab=None, names=None):
  """The JSON-able description of a condition that model builders read."""
  if kind not in KINDS:
    raise errors.ConfigError(f'condition kind {kind!r} unknown; expected one '
                             f'of {KINDS}.')
  spec = {'kind': kind}
  if kind == 'label':
    spec['num_classes'] = int(num_classes)
  elif kind == 'vector':
    v = np.asarray(conditions, np.float64)
    spec['dim'] = int(v.shape[-1])
    if names is not None:
      spec['names'] = list(names)
    # The encoder standardises each component with the training split's
    # statistics (fields on very different scales, e.g. a one-hot next to
    # a radius of 0.13-0.26, then weigh alike). A field constant in training
    # (e.g. a class the split lacks) keeps its scale: std 1, not a tiny
    # divisor that would turn any other value into a huge input.
    spec['mean'] = [float(x) for x in v.mean(0)]
    std = v.std(0)
    spec['std'] = [float(x) for x in np.where(std > 1e-6, std, 1.0)]
    if v.shape[-1] <= MAX_COV_DIM and len(v) > 1:
      # Row-major covariance: what `named_vectors` fills left-out fields
      # from (their mean given the named ones).
      spec['cov'] = [float(x) for x in np.cov(v, rowvar=False).ravel()]
  else:
    spec.update(vocab.to_json())
  return spec


def named_vectors(rows, spec):
  """float32 [N, D] from rows of named values, e.g.
  [{'digit': '7', 'thickness': '4.5'}, {'kind': 'ring', 'x': '0.3'}].

  A name is one of the vector's fields (spec['names']) or the stem of a
  one-hot group: 'digit=7' sets digit_7 to 1 and the rest of digit_* to 0.
  Fields a row leaves out take their mean given the named ones under a
  Gaussian with the training mean and covariance (spec['cov']; fields are
  correlated: a thin digit has a smaller area), or the plain training mean
  for specs without a covariance (runs from before it was saved).

  Raises:
    InputError: naming an unknown field or value and listing the known ones.
  """
  names = list(spec.get('names') or [])
  if not names:
    raise errors.InputError(
        'this model\'s condition vectors have no field names: give plain '
        f'numbers ({spec["dim"]} per vector).')
  index = {n: i for i, n in enumerate(names)}
  groups = {}
  for i, n in enumerate(names):
    stem, _, value = n.rpartition('_')
    if stem and stem not in index:
      groups.setdefault(stem, {})[value] = i
  mean = np.asarray(spec['mean'], np.float64)
  out = np.tile(mean, (len(rows), 1))
  named = np.zeros(out.shape, bool)
  known = ', '.join(names + [f'{g}=<{"|".join(v)}>' for g, v in
                             groups.items()])
  for r, row in enumerate(rows):
    for name, value in row.items():
      if name in groups:
        if value not in groups[name]:
          raise errors.InputError(
              f'condition vector field {name}={value!r}: expected one of '
              f'{sorted(groups[name])}.')
        out[r, list(groups[name].values())] = 0.0
        out[r, groups[name][value]] = 1.0
        named[r, list(groups[name].values())] = True
      elif name in index:
        named[r, index[name]] = True
        try:
          out[r, index[name]] = float(value)
        except ValueError:
          raise errors.InputError(
              f'condition vector field {name}={value!r}: not a number.'
          ) from None
      else:
        raise errors.InputError(
            f'condition vector field {name!r} unknown; this model knows '
            f'{known}.')
  if spec.get('cov') is not None:
    dim = len(mean)
    cov = np.asarray(spec['cov'], np.float64).reshape(dim, dim)
    for r in range(len(rows)):  # a handful of prompts: one solve each
      n, u = named[r], ~named[r]
      if n.any() and u.any():
        gain = cov[np.ix_(u, n)] @ np.linalg.pinv(cov[np.ix_(n, n)])
        out[r, u] = mean[u] + gain @ (out[r, n] - mean[n])
  return check_vectors(out, spec['dim'])


def check_vectors(vectors, dim, what='condition vectors'):
  """float32 [N, dim] from anything array-like, or an InputError."""
  try:
    v = np.asarray(vectors, np.float32)
  except (TypeError, ValueError) as e:
    raise errors.InputError(f'{what}: not numbers ({e}).') from None
  if v.ndim == 1:
    v = v[None]
  if v.ndim != 2 or v.shape[-1] != dim:
    raise errors.InputError(
        f'{what}: shape {v.shape}; the model takes vectors of {dim} values '
        f'([N, {dim}]).')
  if not np.all(np.isfinite(v)):
    raise errors.InputError(f'{what}: NaN or Inf values.')
  return v
