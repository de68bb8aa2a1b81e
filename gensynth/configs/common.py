"""Config fields shared by every trainer."""

import ml_collections


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
