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
