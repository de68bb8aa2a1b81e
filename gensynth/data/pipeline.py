"""One entry point from `config.data` to deterministic batches.

Every source is materialised once as uint8 arrays in host memory (the datasets
gensynth targets fit: MNIST-likes, CIFAR, CelebA at 64x64 is ~2 GB). Batches
are then a pure function of (seed, step): batch `t` holds positions
`t*B .. t*B+B-1` of the concatenation of per-epoch permutations, each drawn from
`default_rng([seed, epoch])`. A resumed run therefore sees exactly the batches
an uninterrupted run would, and each process of a multi-host job slices its own
rows of the same global batch.
"""

import dataclasses
import os
from typing import Optional

import jax
import numpy as np
from absl import logging

from gensynth import errors
from gensynth.data import conditions as conditions_lib
from gensynth.data import folder as folder_lib
from gensynth.data import idx as idx_lib
from gensynth.data import morpho as morpho_lib
from gensynth.data import shapes as shapes_lib

SOURCES = ('shapes', 'idx', 'folder', 'tfds')
VALUE_RANGES = {'zero_one': (0.0, 1.0), 'minus_one_one': (-1.0, 1.0)}


DataError = errors.DataError  # raised here; kept under this name too


@dataclasses.dataclass(frozen=True)
class ArraySource:
  """An in-memory split: uint8 images [N, H, W, C], int32 labels [N] and,
  for vector or text conditions, `conditions` (gensynth.data.conditions):
  float32 [N, D], captions str [N], or (after `encode_text`) token ids
  int32 [N, L] with the vocabulary in `vocab`. `attributes` holds what the
  procedural shapes know about each image (for fidelity metrics)."""
  images: np.ndarray
  labels: np.ndarray
  num_classes: int
  condition: str = 'label'
  conditions: Optional[np.ndarray] = None
  vocab: Optional[conditions_lib.Vocabulary] = None
  vector_names: Optional[tuple] = None
  attributes: Optional[dict] = None

  def __post_init__(self):
    if self.images.ndim != 4 or self.images.dtype != np.uint8:
      raise DataError(f'images must be uint8 [N, H, W, C], got '
                      f'{self.images.dtype} {self.images.shape}.')
    if self.labels.shape != self.images.shape[:1]:
      raise DataError(f'{self.labels.shape} labels for {len(self.images)} '
                      'images.')
    if len(self.images) == 0:
      raise DataError('the split holds no images.')
    if self.condition not in conditions_lib.KINDS:
      raise DataError(f'condition {self.condition!r} unknown; expected one of '
                      f'{conditions_lib.KINDS}.')
    if (self.condition == 'label') != (self.conditions is None):
      raise DataError(f'a {self.condition!r} condition needs conditions '
                      'beside the labels, and only then.')
    if self.conditions is not None and len(self.conditions) != len(
        self.images):
      raise DataError(f'{len(self.conditions)} conditions for '
                      f'{len(self.images)} images.')

  def __len__(self):
    return len(self.images)

  @property
  def image_shape(self):
    return self.images.shape[1:]

  @property
  def condition_spec(self):
    """The condition's description for model builders (and info.json)."""
    if self.condition == 'text' and self.vocab is None:
      raise DataError('text conditions are not tokenised yet: call '
                      'gensynth.data.encode_text first.')
    return conditions_lib.spec_of(
        self.condition, self.conditions, num_classes=self.num_classes,
        vocab=self.vocab, names=self.vector_names)

  def batch_conditions(self, idx):
    """{'cond': conditions[idx]} ready for a step, or {} for labels."""
    if self.conditions is None:
      return {}
    if self.condition == 'text' and self.vocab is None:
      raise DataError('text conditions are not tokenised yet: call '
                      'gensynth.data.encode_text first.')
    return {'cond': self.conditions[idx]}

  def subset(self, idx):
    """The rows `idx` of this split (conditions and attributes included)."""
    pick = lambda a: None if a is None else a[idx]
    attrs = None if self.attributes is None else {
        k: v[idx] for k, v in self.attributes.items()}
    return dataclasses.replace(
        self, images=self.images[idx], labels=self.labels[idx],
        conditions=pick(self.conditions), attributes=attrs)


def encode_text(sources, vocab=None, *, max_len=0):
  """`sources` with captions replaced by token ids.

  The vocabulary is `vocab` (a trained run's) or, if None, built from the
  first source's captions (the training split). Words a split holds that
  the vocabulary lacks are dropped (logged): a model cannot read words it
  never trained on. Sources without text conditions pass through. Returns
  (sources, vocabulary or None).
  """
  texts = [s for s in sources if s.condition == 'text']
  if not texts:
    return list(sources), vocab
  if vocab is None:
    vocab = conditions_lib.Vocabulary.build(texts[0].conditions,
                                            max_len=max_len)
  out = []
  for s in sources:
    if s.condition == 'text' and s.vocab is None:
      known = set(vocab.words)
      unseen = sorted({w for c in s.conditions
                       for w in conditions_lib.words_of(c)} - known)
      if unseen:
        logging.warning('%d words are not in the training vocabulary and are '
                        'dropped from these captions: %s', len(unseen),
                        ', '.join(unseen[:20]))
      try:
        ids = vocab.encode(s.conditions, unknown='drop', allow_empty=True)
      except errors.InputError as e:
        raise DataError(f'captions do not fit the training vocabulary: '
                        f'{e}') from None
      s = dataclasses.replace(s, conditions=ids, vocab=vocab)
    out.append(s)
  return out, vocab


def _resize(images, size):
  """Antialiased bilinear resize of uint8 [N, H, W, C] to [N, size, size, C]."""
  if images.shape[1:3] == (size, size):
    return images
  out = []
  for start in range(0, len(images), 4096):
    chunk = images[start:start + 4096].astype(np.float32)
    shape = (len(chunk), size, size, chunk.shape[-1])
    out.append(np.asarray(jax.image.resize(chunk, shape, 'linear')))
  return np.clip(np.concatenate(out), 0, 255).round().astype(np.uint8)


def _load_tfds(cfg, split):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  try:
    builder = tfds.builder(cfg.name, data_dir=cfg.get('data_dir') or None)
  except tfds.core.registered.DatasetNotFoundError as e:
    raise DataError(f'unknown TFDS dataset name {cfg.name!r} '
                    '(see tfds.list_builders()).') from e
  if cfg.get('download', False):
    builder.download_and_prepare()
  try:
    ds = builder.as_dataset(split=split, shuffle_files=False)
  except AssertionError as e:  # tfds asserts when the data is not prepared.
    raise DataError(
        f'TFDS dataset {cfg.name!r} is not prepared in '
        f'{builder.data_dir!r}: prepare it with tfds.builder(...)'
        '.download_and_prepare() on a machine with network access, or set '
        'config.data.download=True.') from e
  images, labels, conds, names = [], [], [], None
  cond_key = cfg.get('condition_key', '')
  if cfg.get('condition', 'label') != 'label' and cond_key != 'morphometrics':
    if not cond_key:
      raise DataError(f'config.data.condition={cfg.condition!r} on TFDS needs '
                      'config.data.condition_key, the feature to read.')
    if cond_key not in builder.info.features:
      raise DataError(
          f'TFDS dataset {cfg.name!r} has no feature {cond_key!r}; it has '
          f'{sorted(builder.info.features)}.')
  for ex in tfds.as_numpy(ds.batch(4096)):
    images.append(ex[cfg.get('image_key', 'image')])
    labels.append(ex.get(cfg.get('label_key', 'label'),
                         np.zeros(len(ex['image']), np.int32)))
    if cfg.get('condition', 'label') != 'label' and \
        cond_key != 'morphometrics':
      value = ex[cond_key]
      if isinstance(value, dict):  # e.g. CelebA's 40 boolean attributes
        names = sorted(value)
        value = np.stack([np.asarray(value[k], np.float32) for k in names],
                         -1)
      conds.append(value)
  info = builder.info.features
  label_feature = info[cfg.get('label_key', 'label')] if cfg.get(
      'label_key', 'label') in info else None
  num_classes = label_feature.num_classes if label_feature is not None else 1
  conditions = None
  if conds:
    conditions = np.concatenate(conds)
    if cfg.condition == 'text' and conditions.dtype.kind not in 'SUO':
      raise DataError(f'TFDS feature {cond_key!r} holds {conditions.dtype} '
                      'values, not captions; use condition=vector.')
    if cfg.condition == 'text':
      conditions = np.array([c.decode('utf-8') if isinstance(c, bytes)
                             else str(c) for c in conditions])
    else:
      conditions = conditions.reshape(len(conditions), -1).astype(np.float32)
  return np.concatenate(images), np.concatenate(labels).astype(np.int32), \
      num_classes, conditions, names


def _holdout(n, split, fraction, seed):
  """Sorted indices of `split` in a folder of n images."""
  order = np.random.default_rng([seed, 7]).permutation(n)
  n_test = int(round(fraction * n))
  return np.sort(order[:n_test] if split == 'test' else order[n_test:])


def _shapes(cfg, split):
  """The procedural shapes (attribute shapes for vector/text conditions,
  config.data.shapes_attributes or config.data.holdout_pairs)."""
  condition = cfg.get('condition', 'label')
  attributes = (cfg.get('shapes_attributes', False) or condition != 'label'
                or cfg.get('holdout_pairs', False))
  if split == 'heldout' and not cfg.get('holdout_pairs', False):
    raise DataError("split 'heldout' needs config.data.holdout_pairs=True.")
  n = cfg.num_train if split == 'train' else cfg.num_test
  seed = cfg.get('shapes_seed', 0) + {'train': 0, 'test': 1, 'heldout': 2}[split]
  size = cfg.get('image_size') or 32
  if not attributes:
    images, labels = shapes_lib.make_shapes(
        n, image_size=size, channels=cfg.get('channels', 3), seed=seed)
    return images, labels, None, None
  if cfg.get('channels', 3) != 3:
    raise DataError('attribute shapes are RGB: set config.data.channels=3.')
  pairs = ('all' if not cfg.get('holdout_pairs', False) else
           {'train': 'train', 'test': 'train', 'heldout': 'heldout'}[split])
  images, attrs = shapes_lib.make_attribute_shapes(
      n, image_size=size, seed=seed, pairs=pairs)
  conditions = {'label': None, 'vector': attrs['vector'],
                'text': attrs['caption']}[condition]
  return images, attrs['kind'], conditions, attrs


def _morpho(images, labels, condition):
  """Morpho-MNIST conditions of grey digits: vectors (one-hot digit and
  morphometrics) or captions."""
  if images.shape[-1] != 1:
    raise DataError(f'morphometrics measure grey digits; these images have '
                    f'{images.shape[-1]} channels.')
  metrics = morpho_lib.morphometrics(images)
  if condition == 'vector':
    return morpho_lib.vectors(labels, metrics), morpho_lib.VECTOR_FIELDS
  return morpho_lib.captions(labels, metrics), None


def load_split(cfg, split):
  """Loads split 'train' or 'test' (or, for shapes with held-out pairs,
  'heldout') of the source described by `cfg` (config.data).

  With config.data.condition 'vector' or 'text' the split carries those
  conditions; text stays as captions until `encode_text`.
  """
  source = cfg.source
  condition = cfg.get('condition', 'label')
  if source not in SOURCES:
    raise DataError(f'config.data.source={source!r} unknown; expected one of '
                    f'{SOURCES}.')
  if split not in ('train', 'test', 'heldout'):
    raise DataError(f'split {split!r} unknown; expected train or test.')
  if condition not in conditions_lib.KINDS:
    raise DataError(f'config.data.condition={condition!r} unknown; expected '
                    f'one of {conditions_lib.KINDS}.')
  if split == 'heldout' and source != 'shapes':
    raise DataError("split 'heldout' exists for the shapes source only.")
  conditions = attrs = names = None
  if source == 'shapes':
    images, labels, conditions, attrs = _shapes(cfg, split)
    num_classes = len(shapes_lib.CLASS_NAMES)
    names = shapes_lib.VECTOR_FIELDS if condition == 'vector' else None
  elif source == 'idx':
    path = os.path.expanduser(cfg.path)
    images, labels = idx_lib.load_idx_split(path, split)
    num_classes = int(labels.max()) + 1
    if condition != 'label':
      conditions, names = _morpho(images, labels, condition)
  elif source == 'folder':
    directory = os.path.expanduser(cfg.path)
    images, labels, classes, paths = folder_lib.load_image_folder(
        directory, return_paths=True)
    if condition != 'label':
      if not cfg.get('conditions_file'):
        raise DataError(
            f'config.data.condition={condition!r} on an image folder needs '
            'config.data.conditions_file (JSONL or CSV: file -> caption or '
            'vector).')
      conditions, names = folder_lib.read_conditions(
          os.path.expanduser(cfg.conditions_file), paths, condition)
    sel = _holdout(len(images), split, cfg.get('holdout_fraction', 0.1),
                   cfg.get('holdout_seed', 0))
    images, labels = images[sel], labels[sel]
    conditions = None if conditions is None else conditions[sel]
    num_classes = len(classes)
  else:
    tfds_split = cfg.get('train_split', 'train') if split == 'train' else \
        cfg.get('test_split', 'test')
    images, labels, num_classes, conditions, names = _load_tfds(cfg,
                                                                tfds_split)
    if images.ndim == 3:
      images = images[..., None]
    if cfg.get('condition_key') == 'morphometrics':
      conditions, names = _morpho(images, labels, condition)
  if cfg.get('image_size'):
    images = _resize(images, cfg.image_size)
  if cfg.get('num_classes'):  # Pin the label space (e.g. a split lacks a class).
    if labels.max() >= cfg.num_classes:
      raise DataError(f'label {labels.max()} >= config.data.num_classes='
                      f'{cfg.num_classes}.')
    num_classes = cfg.num_classes
  return ArraySource(images, labels, num_classes, condition=condition,
                     conditions=conditions,
                     vector_names=None if names is None else tuple(names),
                     attributes=attrs)


def preprocess(images, *, value_range='zero_one', binarize_rng=None):
  """uint8 [..., H, W, C] -> float32 in `value_range`.

  With `binarize_rng` (a NumPy Generator) each pixel becomes a fresh
  Bernoulli(x/255) draw, mapped to the ends of the value range.
  """
  if value_range not in VALUE_RANGES:
    raise DataError(f'value_range={value_range!r} unknown; expected one of '
                    f'{sorted(VALUE_RANGES)}.')
  x = images.astype(np.float32) / 255.0
  if binarize_rng is not None:
    x = (binarize_rng.random(x.shape, np.float32) < x).astype(np.float32)
  lo, hi = VALUE_RANGES[value_range]
  return x * (hi - lo) + lo if (lo, hi) != (0.0, 1.0) else x


def to_unit(x, value_range):
  """Model-range images (`value_range`) -> float NumPy in [0, 1] (for PNGs and
  the feature extractor): the inverse of `preprocess`'s scaling."""
  if value_range not in VALUE_RANGES:
    raise DataError(f'value_range={value_range!r} unknown; expected one of '
                    f'{sorted(VALUE_RANGES)}.')
  lo, hi = VALUE_RANGES[value_range]
  return (np.asarray(x) - lo) / (hi - lo)


class BatchIterator:
  """Deterministic, resumable stream of process-local NumPy batches.

  `batch(step)` is a pure function of (seed, step); iterating from
  `start_step` yields `batch(start_step), batch(start_step + 1), ...`.
  """

  def __init__(self, source, *, global_batch_size, seed, value_range,
               dynamic_binarize=False, process_index=0, process_count=1):
    if global_batch_size <= 0 or global_batch_size % process_count:
      raise DataError(f'global batch size {global_batch_size} must be positive '
                      f'and divisible by the process count {process_count}.')
    self.source = source
    self.global_batch_size = global_batch_size
    self.seed = seed
    self.value_range = value_range
    self.dynamic_binarize = dynamic_binarize
    local = global_batch_size // process_count
    self._rows = slice(process_index * local, (process_index + 1) * local)
    self._perm_cache = {}

  def _permutation(self, epoch):
    if epoch not in self._perm_cache:
      if len(self._perm_cache) > 2:
        self._perm_cache.pop(min(self._perm_cache))
      self._perm_cache[epoch] = np.random.default_rng(
          [self.seed, epoch]).permutation(len(self.source))
    return self._perm_cache[epoch]

  def indices(self, step):
    """Global dataset indices of batch `step`."""
    n = len(self.source)
    pos = step * self.global_batch_size + np.arange(self.global_batch_size)
    epochs, offsets = np.divmod(pos, n)
    out = np.empty_like(pos)
    for e in np.unique(epochs):
      sel = epochs == e
      out[sel] = self._permutation(int(e))[offsets[sel]]
    return out

  def batch(self, step):
    idx = self.indices(step)[self._rows]
    if self.dynamic_binarize:
      # Draw for the whole global batch so that every process count sees the
      # same pixels; slicing afterwards keeps multi-host runs identical.
      rng = np.random.default_rng([self.seed, 1, step])
      full = rng.random((self.global_batch_size,) + self.source.image_shape,
                        np.float32)[self._rows]
      x = (full < self.source.images[idx] / np.float32(255)).astype(np.float32)
      lo, hi = VALUE_RANGES[self.value_range]
      image = x * (hi - lo) + lo
    else:
      image = preprocess(self.source.images[idx], value_range=self.value_range)
    return {'image': image, 'label': self.source.labels[idx],
            **self.source.batch_conditions(idx)}

  def iterate(self, start_step=0):
    step = start_step
    while True:
      yield self.batch(step)
      step += 1


def eval_batches(source, *, batch_size, value_range, binarize_seed=None):
  """Fixed-order batches over a whole split, padded to `batch_size`.

  With `binarize_seed` the split is binarized once with that seed (the
  fixed-seed binarized test set). Each batch carries `mask` (1 for real rows).
  """
  rng = None if binarize_seed is None else np.random.default_rng(binarize_seed)
  images = preprocess(source.images, value_range=value_range, binarize_rng=rng)
  n = len(images)
  for start in range(0, n, batch_size):
    rows = np.arange(start, min(start + batch_size, n))
    batch = {'image': images[rows], 'label': source.labels[rows],
             **source.batch_conditions(rows)}
    pad = batch_size - len(rows)
    batch['mask'] = np.ones(len(rows), np.float32)
    if pad:
      batch = {k: np.concatenate([v, np.zeros((pad,) + v.shape[1:], v.dtype)])
               for k, v in batch.items()}
    yield batch
