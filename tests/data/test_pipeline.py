import ml_collections
import numpy as np
import pytest

from gensynth import data as data_lib
from gensynth.configs import vae_common
from gensynth.data import pipeline
from gensynth.data import shapes
from tests import helpers


def _source(n=50, size=8, seed=0):
  rng = np.random.default_rng(seed)
  return data_lib.ArraySource(
      rng.integers(0, 256, (n, size, size, 1), dtype=np.uint8),
      np.arange(n, dtype=np.int32) % 3, 3)


def test_batches_are_pure_functions_of_seed_and_step():
  src = _source()
  a = data_lib.BatchIterator(src, global_batch_size=8, seed=3,
                             value_range='zero_one')
  b = data_lib.BatchIterator(src, global_batch_size=8, seed=3,
                             value_range='zero_one')
  # b is asked in another order: results must not depend on call history.
  later = b.batch(11)
  first = [a.batch(s)['label'] for s in range(12)]
  np.testing.assert_array_equal(first[11], later['label'])
  resumed = b.iterate(start_step=5)
  for s in range(5, 12):
    np.testing.assert_array_equal(next(resumed)['label'], first[s])
  c = data_lib.BatchIterator(src, global_batch_size=8, seed=4,
                             value_range='zero_one')
  assert not np.array_equal(c.indices(0), a.indices(0))


def test_each_epoch_is_a_permutation():
  src = _source(n=24)
  it = data_lib.BatchIterator(src, global_batch_size=5, seed=0,
                              value_range='zero_one')
  seen = np.concatenate([it.indices(s) for s in range(10)])  # 50 positions
  np.testing.assert_array_equal(np.sort(seen[:24]), np.arange(24))
  np.testing.assert_array_equal(np.sort(seen[24:48]), np.arange(24))
  assert not np.array_equal(seen[:24], seen[24:48])


def test_process_slices_tile_the_global_batch():
  src = _source()
  kw = dict(global_batch_size=8, seed=1, value_range='minus_one_one',
            dynamic_binarize=True)
  full = data_lib.BatchIterator(src, **kw).batch(3)
  parts = [data_lib.BatchIterator(src, process_index=p, process_count=2,
                                  **kw).batch(3) for p in range(2)]
  for key in ('image', 'label'):
    np.testing.assert_array_equal(
        np.concatenate([p[key] for p in parts]), full[key])


def test_dynamic_binarization_is_fresh_and_unbiased():
  img = np.full((1, 32, 32, 1), 64, np.uint8)  # p = 64/255
  src = data_lib.ArraySource(np.repeat(img, 4, 0), np.zeros(4, np.int32), 1)
  it = data_lib.BatchIterator(src, global_batch_size=4, seed=0,
                              value_range='zero_one', dynamic_binarize=True)
  b0, b1 = it.batch(0)['image'], it.batch(1)['image']
  assert set(np.unique(b0)) <= {0.0, 1.0}
  assert not np.array_equal(b0, b1)
  mean = np.mean([it.batch(s)['image'].mean() for s in range(20)])
  assert abs(mean - 64 / 255) < 0.01


def test_fixed_test_binarization_and_padding():
  src = _source(n=10)
  a = list(data_lib.eval_batches(src, batch_size=4, value_range='zero_one',
                                 binarize_seed=7))
  b = list(data_lib.eval_batches(src, batch_size=4, value_range='zero_one',
                                 binarize_seed=7))
  assert len(a) == 3
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x['image'], y['image'])
  np.testing.assert_array_equal(a[-1]['mask'], [1, 1, 0, 0])
  assert a[-1]['image'].shape == (4, 8, 8, 1)


def test_value_ranges():
  img = np.array([0, 255], np.uint8).reshape(1, 1, 2, 1)
  np.testing.assert_allclose(
      pipeline.preprocess(img, value_range='minus_one_one').ravel(), [-1, 1])
  np.testing.assert_allclose(
      pipeline.preprocess(img, value_range='zero_one').ravel(), [0, 1])
  with pytest.raises(ValueError, match='value_range'):
    pipeline.preprocess(img, value_range='0-1')


def test_load_split_sources(tmp_path):
  cfg = vae_common.base_config().data
  cfg.update(source='shapes', num_train=12, num_test=4, image_size=16)
  train = data_lib.load_split(cfg, 'train')
  assert train.images.shape == (12, 16, 16, 3) and train.num_classes == 6
  cfg.update(source='idx', path=helpers.make_idx_dir(str(tmp_path / 'm')),
             image_size=32)
  test = data_lib.load_split(cfg, 'test')
  assert test.images.shape == (16, 32, 32, 1)


def test_folder_holdout_is_disjoint(tmp_path):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  for i in range(20):
    (tmp_path / f'c{i % 2}').mkdir(exist_ok=True)
    Image.fromarray(np.full((4, 4), i, np.uint8)).save(
        tmp_path / f'c{i % 2}' / f'{i}.png')
  cfg = vae_common.base_config().data
  cfg.update(source='folder', path=str(tmp_path), holdout_fraction=0.25)
  train = data_lib.load_split(cfg, 'train')
  test = data_lib.load_split(cfg, 'test')
  assert len(train) == 15 and len(test) == 5
  assert not set(train.images[:, 0, 0, 0]) & set(test.images[:, 0, 0, 0])


def test_tfds_path_with_mock_data():
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  cfg = vae_common.base_config().data
  cfg.update(source='tfds', name='mnist')
  with tfds.testing.mock_data(num_examples=12):
    src = data_lib.load_split(cfg, 'train')
  assert src.images.shape == (12, 28, 28, 1) and src.num_classes == 10


def test_config_errors(tmp_path):
  cfg = vae_common.base_config().data
  cfg.source = 'nfs'
  with pytest.raises(ValueError, match="source='nfs' unknown"):
    data_lib.load_split(cfg, 'train')
  cfg.update(source='tfds', name='no_such_dataset_xyz')
  with pytest.raises(ValueError, match='unknown TFDS dataset name'):
    data_lib.load_split(cfg, 'train')
  cfg.update(name='mnist', data_dir=str(tmp_path), download=False)
  with pytest.raises(ValueError, match='not prepared'):
    data_lib.load_split(cfg, 'train')
  with pytest.raises(ValueError, match='divisible by the process count'):
    data_lib.BatchIterator(_source(), global_batch_size=5, seed=0,
                           value_range='zero_one', process_count=2)


def test_shapes_dataset_deterministic_and_labelled():
  a, la = shapes.make_shapes(30, image_size=16, seed=5)
  b, lb = shapes.make_shapes(30, image_size=16, seed=5)
  np.testing.assert_array_equal(a, b)
  np.testing.assert_array_equal(la, lb)
  assert set(la) <= set(range(len(shapes.CLASS_NAMES)))
  grey, _ = shapes.make_shapes(4, image_size=16, channels=1, seed=5)
  assert grey.shape == (4, 16, 16, 1)
  # Shape classes differ in foreground area: disc > ring at equal radius.
  imgs, labels = shapes.make_shapes(600, image_size=32, seed=1)
  fg = (imgs.astype(float).max(-1) > 0.42 * 255).mean((1, 2))
  assert fg[labels == 0].mean() > fg[labels == 3].mean()
  with pytest.raises(ValueError, match='num > 0'):
    shapes.make_shapes(0)


def test_unused_config_keys_are_locked():
  cfg = ml_collections.ConfigDict(vae_common.base_config().to_dict())
  cfg.lock()
  with pytest.raises(AttributeError):
    cfg.data.sourc = 'x'
