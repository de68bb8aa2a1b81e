"""Attribute shapes, captions, the tokenizer and condition-carrying splits."""

import json

import ml_collections
import numpy as np
import pytest

from gensynth import data as data_lib
from gensynth import errors
from gensynth.configs import common
from gensynth.data import conditions
from gensynth.data import shapes
from tests import helpers


@pytest.fixture(scope='module')
def attribute_shapes():
  return shapes.make_attribute_shapes(1500, image_size=32, seed=11)


def test_read_attributes_is_exact_on_the_dataset(attribute_shapes):
  images, attrs = attribute_shapes
  got = shapes.read_attributes(images)
  assert got['found'].all()
  for key in ('kind', 'colour', 'size', 'position'):
    np.testing.assert_array_equal(got[key], attrs[key], err_msg=key)
  # Continuous fields: within the pixel grid's resolution.
  err = np.abs(got['vector'] - attrs['vector'])
  assert err[:, 6:9].max() < 0.03  # RGB (noise averages out)
  assert err[:, 9:].max() < 0.05   # radius, x, y as fractions of the side
  np.testing.assert_array_equal(got['objects'], 1)
  # Also on float images in [0, 1].
  again = shapes.read_attributes(images[:50] / 255.0)
  np.testing.assert_array_equal(again['kind'], attrs['kind'][:50])


def test_read_attributes_notices_what_is_wrong(attribute_shapes):
  images, attrs = attribute_shapes
  shuffled = shapes.read_attributes(images[::-1])
  assert np.mean(shuffled['kind'] == attrs['kind']) < 0.5
  empty = shapes.read_attributes(np.zeros((2, 32, 32, 3), np.uint8))
  assert not empty['found'].any()
  np.testing.assert_array_equal(empty['objects'], 0)
  # A shape drawn twice (two images' foregrounds laid over each other where
  # they do not touch) counts two regions; a 2-pixel speck counts none.
  a, b = images[0].astype(int), images[1].astype(int)
  fa, fb = a.max(-1) > 127, b.max(-1) > 127
  assert not (fa & fb).any()
  two = np.where(fb[..., None], b, a).astype(np.uint8)
  speck = images[0].copy()
  far = np.argwhere(~fa)[-1]
  speck[far[0], far[1]] = 255
  speck[far[0], max(far[1] - 1, 0)] = 255
  counted = shapes.read_attributes(np.stack([two, speck, images[2]]))
  np.testing.assert_array_equal(counted['objects'], [2, 1, 1])
  np.testing.assert_array_equal(
      shapes.count_regions(np.array([[[1, 0, 1], [0, 0, 0], [1, 1, 0]]],
                                    bool)), [3])
  np.testing.assert_array_equal(
      shapes.count_regions(np.array([[[1, 0, 0], [0, 1, 0], [0, 0, 1]]],
                                    bool)), [1])  # diagonal: 8-connected
  with pytest.raises(errors.InputError, match=r'\[N, S, S, 3\]'):
    shapes.read_attributes(np.zeros((2, 32, 32), np.uint8))


def test_captions_name_the_attributes(attribute_shapes):
  _, attrs = attribute_shapes
  for i in range(200):
    words = set(conditions.words_of(attrs['caption'][i]))
    assert shapes.CLASS_NAMES[attrs['kind'][i]] in words
    colour_named = shapes.COLOUR_NAMES[attrs['colour'][i]] in words
    assert colour_named == attrs['mentions'][i, 0]
    assert (shapes.SIZE_NAMES[attrs['size'][i]] in words) == \
        attrs['mentions'][i, 1]
  # Each optional attribute is left out sometimes, named mostly.
  assert 0.5 < attrs['mentions'].mean(0).min() < attrs['mentions'].mean(
      0).max() < 1.0


def test_heldout_pairs_never_reach_training():
  _, train = shapes.make_attribute_shapes(3000, seed=1, pairs='train')
  _, held = shapes.make_attribute_shapes(300, seed=2, pairs='heldout')
  pair = lambda a: set(zip(a['kind'].tolist(), a['colour'].tolist()))
  heldout = {(shapes.CLASS_NAMES.index(k), shapes.COLOUR_NAMES.index(c))
             for k, c in shapes.HELDOUT_PAIRS}
  assert not pair(train) & heldout
  assert pair(held) == heldout
  # Every word of the held-out pairs is still seen in training.
  assert set(train['kind'].tolist()) == set(range(6))
  assert set(train['colour'].tolist()) == set(range(6))


def test_vocabulary_round_trip_and_unknown_words():
  vocab = conditions.Vocabulary.build(['a red disc', 'A small blue ring!'])
  assert vocab.words == ('a', 'blue', 'disc', 'red', 'ring', 'small')
  ids = vocab.encode(['a blue disc', 'small ring'])
  assert ids.shape == (2, 4) and ids.dtype == np.int32
  assert vocab.decode(ids) == ['a blue disc', 'small ring']
  with pytest.raises(errors.InputError, match=r"\['huge'\].*known words"):
    vocab.encode('a huge disc')
  np.testing.assert_array_equal(vocab.encode('a huge disc', unknown='drop'),
                                vocab.encode('a disc'))
  with pytest.raises(errors.InputError, match='no known word'):
    vocab.encode('enormous', unknown='drop')
  with pytest.raises(errors.InputError, match='at most 4'):
    vocab.encode('a red disc a red disc')
  again = conditions.Vocabulary.from_json(json.loads(json.dumps(
      vocab.to_json())))
  assert again == vocab


def _shapes_cfg(**kw):
  c = common.data_config()
  c.update(dict(dict(num_train=64, num_test=16, image_size=32), **kw))
  return c


@pytest.mark.parametrize('kind', ['vector', 'text'])
def test_splits_carry_conditions_into_batches(kind):
  cfg = _shapes_cfg(condition=kind)
  raw = [data_lib.load_split(cfg, s) for s in ('train', 'test')]
  (train, test), vocab = data_lib.encode_text(raw)
  assert (vocab is not None) == (kind == 'text')
  it = data_lib.BatchIterator(train, global_batch_size=8, seed=0,
                              value_range='minus_one_one')
  batch = it.batch(3)
  idx = it.indices(3)
  np.testing.assert_array_equal(batch['cond'], train.conditions[idx])
  if kind == 'vector':
    assert batch['cond'].shape == (8, 12)
    np.testing.assert_array_equal(batch['cond'][:, :6].argmax(-1),
                                  batch['label'])
  else:
    assert batch['cond'].shape == (8, vocab.max_len)
    for caption, row in zip(vocab.decode(batch['cond']), idx):
      assert caption == ' '.join(conditions.words_of(raw[0].conditions[row]))
  spec = train.condition_spec
  assert spec['kind'] == kind
  evals = list(data_lib.eval_batches(test, batch_size=12,
                                     value_range='zero_one'))
  assert [len(b['cond']) for b in evals] == [12, 12]
  assert evals[1]['mask'].sum() == 4


def test_text_needs_tokens_and_fitting_test_captions():
  cfg = _shapes_cfg(condition='text')
  train = data_lib.load_split(cfg, 'train')
  with pytest.raises(errors.DataError, match='encode_text'):
    train.batch_conditions(np.arange(2))
  vocab = conditions.Vocabulary(words=('a', 'disc'), max_len=3)
  # Words outside a trained vocabulary are dropped; too long is an error.
  (enc,), _ = data_lib.encode_text([train.subset(np.arange(30))], vocab)
  kept = vocab.decode(enc.conditions)
  assert set(' '.join(kept).split()) <= {'a', 'disc'}
  assert 'a disc' in kept or 'disc' in kept
  with pytest.raises(errors.DataError, match='at most 3'):
    data_lib.encode_text([train], conditions.Vocabulary(
        words=tuple('a at in on the top'.split()), max_len=3))


def test_condition_config_errors(tmp_path):
  with pytest.raises(errors.DataError, match='unknown'):
    data_lib.load_split(_shapes_cfg(condition='sound'), 'train')
  with pytest.raises(errors.DataError, match='holdout_pairs'):
    data_lib.load_split(_shapes_cfg(), 'heldout')
  idx = _shapes_cfg(condition='text')
  idx.update(source='idx', path=str(tmp_path))
  with pytest.raises(errors.DataError):
    data_lib.load_split(idx, 'train')  # no IDX files there


def _write_folder(root, n=6):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  names = []
  for i in range(n):
    cls = 'a' if i % 2 else 'b'
    (root / cls).mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(
        root / cls / f'{i}.png')
    names.append(f'{cls}/{i}.png')
  return names


def test_folder_reads_captions_and_vectors(tmp_path):
  names = _write_folder(tmp_path / 'img')
  jsonl = tmp_path / 'caps.jsonl'
  jsonl.write_text('\n'.join(json.dumps({'file': n, 'caption': f'image {n[2]}'})
                             for n in names))
  csv = tmp_path / 'vec.csv'
  csv.write_text('file,u,v\n' + '\n'.join(
      f'{n.split("/")[1]},{i},{2 * i}' for i, n in enumerate(names)))
  base = dict(source='folder', path=str(tmp_path / 'img'),
              holdout_fraction=0.0)
  text = data_lib.load_split(ml_collections.ConfigDict(dict(
      _shapes_cfg(**base, condition='text',
                  conditions_file=str(jsonl)))), 'train')
  # Files are read class by class ('a' then 'b'), each sorted.
  order = sorted(names)
  assert list(text.conditions) == [f'image {n[2]}' for n in order]
  vec = data_lib.load_split(_shapes_cfg(**base, condition='vector',
                                        conditions_file=str(csv)), 'train')
  assert vec.vector_names == ('u', 'v')
  want = {n: names.index(n) for n in names}
  np.testing.assert_array_equal(vec.conditions[:, 0],
                                [want[n] for n in order])
  missing = tmp_path / 'short.jsonl'
  missing.write_text(json.dumps({'file': names[0], 'caption': 'x'}))
  with pytest.raises(errors.DataError, match='no caption for image'):
    data_lib.load_split(_shapes_cfg(**base, condition='text',
                                    conditions_file=str(missing)), 'train')
  with pytest.raises(errors.DataError, match='conditions_file'):
    data_lib.load_split(_shapes_cfg(**base, condition='text'), 'train')


def test_morphometrics_measure_slant_thickness_and_box():
  from gensynth.data import morpho  # pylint: disable=g-import-not-at-top
  digits = np.stack([helpers.slanted_bar(0.0, width=2), helpers.slanted_bar(0.4, width=2),
                     helpers.slanted_bar(-0.4, width=2), helpers.slanted_bar(0.0, width=5)])
  m = morpho.morphometrics(digits[..., None])
  thickness, slant, width, height, area = m.T
  assert abs(slant[0]) < 0.02
  assert slant[1] > 0.3 and slant[2] < -0.3  # leaning right, left
  assert abs(thickness[0] - 2) < 0.4 and abs(thickness[3] - 5) < 0.8
  np.testing.assert_array_equal(height, [20, 20, 20, 20])
  assert width[0] == 2 and width[3] == 5 and width[1] > 8
  np.testing.assert_array_equal(area, (digits > 127).sum((1, 2)))
  caps = morpho.captions([7, 7, 2, 1], m)
  assert list(caps) == ['a thin seven', 'a thin seven slanting right',
                        'a thin two slanting left', 'a thick one']
  np.testing.assert_array_equal(morpho.categories(m),
                                [[0, 1], [0, 2], [0, 0], [2, 1]])
  with pytest.raises(errors.InputError, match=r'\[N, H, W\]'):
    morpho.morphometrics(np.zeros((2, 28, 28, 3)))


def test_idx_digits_get_morphometric_conditions(tmp_path):
  helpers.make_idx_dir(str(tmp_path), n_train=32, n_test=8)
  cfg = _shapes_cfg(source='idx', path=str(tmp_path), condition='text',
                    image_size=0)
  (train, test), vocab = data_lib.encode_text(
      [data_lib.load_split(cfg, 'train'), data_lib.load_split(cfg, 'test')])
  assert test.conditions.shape == (8, vocab.max_len)
  assert set(vocab.words) & {'zero', 'one', 'two', 'three', 'four', 'five'}
  cfg.condition = 'vector'
  vec = data_lib.load_split(cfg, 'train')
  assert vec.conditions.shape == (32, 15)
  assert vec.condition_spec['names'] == [f'digit_{i}' for i in range(10)] + [
      'thickness', 'slant', 'width', 'height', 'area']
  # The one-hot digit is the label; the rest are the digit's measurements.
  np.testing.assert_array_equal(vec.conditions[:, :10].argmax(-1), vec.labels)
  np.testing.assert_array_equal(vec.conditions[:, :10].sum(-1), 1)
  from gensynth.data import morpho  # pylint: disable=g-import-not-at-top
  np.testing.assert_allclose(vec.conditions[:, 10:],
                             morpho.morphometrics(vec.images))


def test_tfds_conditions_by_feature_name():
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  cfg = _shapes_cfg(source='tfds', name='celeb_a', condition='vector',
                    condition_key='attributes', image_size=0)
  with tfds.testing.mock_data(num_examples=6):
    src = data_lib.load_split(cfg, 'train')
    assert src.conditions.shape == (6, 40) and src.conditions.dtype == np.float32
    assert 'Smiling' in src.vector_names
    cfg.condition_key = 'no_such_feature'
    with pytest.raises(errors.DataError, match='no feature'):
      data_lib.load_split(cfg, 'train')
    cfg.update(condition='text', condition_key='attributes')
    with pytest.raises(errors.DataError, match='not captions'):
      data_lib.load_split(cfg, 'train')
    mnist = _shapes_cfg(source='tfds', name='mnist', condition='text',
                        condition_key='morphometrics', image_size=0)
    (digits,), vocab = data_lib.encode_text([data_lib.load_split(mnist,
                                                                 'train')])
  assert digits.conditions.shape[0] == 6 and vocab.words[0] == 'a'


def test_named_vectors_fill_one_hot_groups_and_means():
  from gensynth.data import conditions  # pylint: disable=g-import-not-at-top
  from gensynth.data import morpho  # pylint: disable=g-import-not-at-top
  names = list(morpho.VECTOR_FIELDS)
  mean = [0.1] * 10 + [3.0, 0.1, 15.0, 19.0, 150.0]
  spec = {'kind': 'vector', 'dim': 15, 'names': names, 'mean': mean}
  v = conditions.named_vectors(
      [{'digit': '7', 'thickness': '4.5'}, {'slant': '-0.3'}], spec)
  assert v.shape == (2, 15) and v.dtype == np.float32
  np.testing.assert_array_equal(v[0, :10], np.eye(10)[7])
  np.testing.assert_allclose(v[0, 10:], [4.5, 0.1, 15.0, 19.0, 150.0])
  np.testing.assert_allclose(v[1, :11], mean[:11])  # left out: the mean
  assert v[1, 11] == np.float32(-0.3)
  np.testing.assert_allclose(v[1, 12:], mean[12:])
  for row, message in (({'colour': 'red'}, "'colour' unknown.*digit=<0"),
                       ({'digit': '12'}, "digit='12': expected one of"),
                       ({'slant': 'steep'}, 'not a number')):
    with pytest.raises(errors.InputError, match=message):
      conditions.named_vectors([row], spec)


def test_named_vectors_fill_left_out_fields_given_the_named_ones():
  from gensynth.data import conditions  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  a = rng.normal(3.0, 1.0, 4000)
  b = 2.0 * a + rng.normal(0.0, 0.1, 4000)  # correlated with a
  c = rng.normal(-1.0, 1.0, 4000)  # independent of both
  spec = conditions.spec_of('vector', np.stack([a, b, c], -1),
                            names=('a', 'b', 'c'))
  assert len(spec['cov']) == 9
  v = conditions.named_vectors([{'a': '5'}, {'b': '2', 'c': '0.5'}], spec)
  assert abs(v[0, 1] - 10.0) < 0.2  # b given a = 5
  assert abs(v[0, 2] - spec['mean'][2]) < 0.1  # c: no information
  assert abs(v[1, 0] - 1.0) < 0.1 and v[1, 2] == np.float32(0.5)
  # A spec from before the covariance was saved: the plain mean.
  del spec['cov']
  v = conditions.named_vectors([{'a': '5'}], spec)
  np.testing.assert_allclose(v[0, 1:], spec['mean'][1:], rtol=1e-6)
