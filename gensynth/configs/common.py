"""Config fields shared by every trainer, the variant parser every config file
uses, and the upgrade of an older run's config.json."""

import ml_collections

from gensynth import errors


def data_config():
  """config.data: where images come from and how they are scaled."""
  return ml_collections.ConfigDict(dict(
      source='shapes',  # shapes | idx | folder | tfds
      name='',  # TFDS dataset name
      path='',  # idx directory or image folder
      data_dir='',  # TFDS data_dir ('' = TFDS default)
      download=False,  # TFDS: download_and_prepare if missing
      train_split='train', test_split='test',  # TFDS split names
      image_key='image', label_key='label',  # TFDS feature names
      holdout_fraction=0.1, holdout_seed=0,  # folder: test split
      image_size=0,  # 0 = native size
      channels=3,  # shapes only
      num_train=20_000, num_test=2_000, shapes_seed=0,  # shapes only
      num_classes=0,  # 0 = infer from the labels
      # What a conditional model is conditioned on: label (class ids),
      # vector (a float vector per image) or text (a caption per image).
      condition='label',
      # TFDS: the feature holding the vector or caption ('morphometrics':
      # measure digits; idx sources always do, gensynth.data.morpho).
      condition_key='',
      conditions_file='',  # folder: JSONL/CSV, file -> caption or vector
      text_max_len=0,  # words per caption; 0 = the longest training caption
      # shapes only: named colours/sizes/positions (captions, vectors); with
      # holdout_pairs the training split never shows
      # gensynth.data.shapes.HELDOUT_PAIRS (split 'heldout' shows only them).
      shapes_attributes=False, holdout_pairs=False,
      value_range='zero_one',  # zero_one | minus_one_one
      binarize=False,  # dynamic binarization (train), fixed seed (test)
      test_binarize_seed=1234,
  ))


def smoke_schedule(c, steps, *, num_test):
  """The `:smoke` variants' shared part: batch 8 on 64 training images, logs
  and checkpoints every 2 of `steps` steps, images at the end."""
  c.batch_size = 8
  c.num_steps = steps
  c.log_every = 2
  c.checkpoint_every = 2
  c.image_every = steps
  c.data.num_train, c.data.num_test = 64, num_test
  return c


def condition_variants(c, variants):
  """The shapes configs' condition variants: 'cond' (class ids), 'text'
  (captions), 'vector' (attribute vectors), 'attributes' (class ids on the
  attribute shapes: the class-only baseline for text/vector runs) and
  'heldout' (the training split never shows HELDOUT_PAIRS)."""
  chosen = variants & {'cond', 'text', 'vector', 'attributes'}
  if len(chosen) > 1:
    raise errors.ConfigError(
        f'variants {sorted(chosen)} each pick the condition; choose one.')
  if chosen:
    c.model.conditional = True
  if 'text' in variants:
    c.data.condition = 'text'
  if 'vector' in variants:
    c.data.condition = 'vector'
  if 'attributes' in variants:
    c.data.shapes_attributes = True
  if 'heldout' in variants:
    c.data.holdout_pairs = True
  return c


def parse_variants(name, arg, allowed):
  """The set of comma-separated variants in `arg` ('' or None: none).

  Raises:
    ValueError: naming the config file, the unknown variants and the allowed
      ones.
  """
  variants = set(filter(None, (arg or '').split(',')))
  unknown = variants - set(allowed)
  if unknown:
    raise errors.ConfigError(
        f'{name} variants {sorted(unknown)} unknown; expected any '
        f'of {", ".join(allowed)} (comma-separated).')
  return variants


# Fields added after runs were first written, each with the value that
# reproduces what an older run (whose config.json lacks it) did. Keyed by
# trainer; '*' applies to every trainer.
_ADDED_FIELDS = {
    '*': {'keep_checkpoints': 3, 'skip_nonfinite': False,
          'model.conv_impl': 'auto'},
    'vae': {'micro_batches': 1, 'image_every': 0, 'eval_every': 0,
            'model.ar_channels': 0, 'model.ar_layers': 2, 'model.act': 'silu',
            'model.embed_dim': 32, 'model.text_width': 64,
            'model.text_layers': 2, 'model.text_heads': 4,
            'loss.cond_dropout': 0.0},
    'gan': {'image_every': 0, 'model.g_upsample': 'transpose',
            'model.d_mbstd_group': 0, 'loss.shared_fakes': False,
            'loss.mismatch_weight': 0.0, 'loss.mode_seeking_weight': 0.0,
            'loss.contrastive_weight': 0.0,
            'model.text_width': 64, 'model.text_layers': 2,
            'model.text_heads': 4},
    'classifier': {'eval_every': 0, 'data.augment_shift': 0},
    'fusion': {'model.weights_level': 0, 'data.defocus_blur': 'gaussian',
               'loss.decisive_weight': 0.0, 'loss.qabf_weight': 0.0,
               'model.prior_exponent': None, 'data.defocus_layers': False,
               'model.down_levels': None, 'data.source_jpeg': (),
               'data.defocus_regions': 'fields'},
}


def upgrade(config):
  """An older run's config (a dict or ConfigDict from its config.json) with
  every field gensynth reads now, missing ones set to what the older code
  did. Unlocked; fields present are kept as they are.

  Raises:
    ValueError: if the config names no known trainer.
  """
  c = ml_collections.ConfigDict(
      config.to_dict() if isinstance(config, ml_collections.ConfigDict)
      else dict(config))
  trainer = c.get('trainer')
  if trainer not in ('vae', 'gan', 'classifier', 'fusion'):
    raise errors.ConfigError(
        f'config.trainer={trainer!r}: not a gensynth run config '
        "(expected 'vae', 'gan', 'classifier' or 'fusion').")
  added = dict(_ADDED_FIELDS[trainer]) if trainer == 'fusion' else {
      **_ADDED_FIELDS['*'], **_ADDED_FIELDS[trainer]}  # fusion began later
  for path, value in added.items():
    *parents, leaf = path.split('.')
    node = c
    for p in parents:
      if p not in node:
        node[p] = ml_collections.ConfigDict()
      node = node[p]
    if leaf not in node:
      node[leaf] = value
  data = c.get('data')
  if data is not None and trainer != 'fusion':  # fusion data is its own
    for k, v in data_config().items():
      if k not in data:
        data[k] = v
  return c


def require_non_negative(config, *fields):
  """ConfigError naming the first of the dotted `fields` (e.g.
  'loss.mismatch_weight') whose value is negative."""
  for field in fields:
    value = config
    for part in field.split('.'):
      value = value[part]
    if value < 0:
      raise errors.ConfigError(f'config.{field}={value} must be >= 0.')
