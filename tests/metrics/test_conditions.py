"""Condition-fidelity metrics and the R-precision evaluator."""

import numpy as np
import pytest

from gensynth import errors
from gensynth.data import conditions
from gensynth.data import shapes
from gensynth.evaluation import text_match
from gensynth.metrics import conditions as metrics
from tests import helpers


def test_categorical_and_continuous_agreement():
  got = metrics.categorical_agreement([0, 1, 1, 2], [0, 1, 0, 2], 4,
                                      mask=[True, True, True, False])
  assert got['accuracy'] == pytest.approx(2 / 3) and got['count'] == 3
  assert got['per_value'] == [1.0, 0.5, None, None]
  c = metrics.continuous_agreement([1.0, 2.0, 3.0], [2.0, 4.0, 6.5])
  assert c['pearson_r'] > 0.99 and c['mae'] == pytest.approx(2.1666, 1e-3)
  assert metrics.continuous_agreement([1.0, 1.0], [0.0, 1.0])['pearson_r'] \
      is None
  with pytest.raises(errors.InputError, match='one shape'):
    metrics.categorical_agreement([0, 1], [0], 2)


def test_shapes_fidelity_scores_named_attributes_only():
  images, attrs = shapes.make_attribute_shapes(300, seed=4)
  perfect = metrics.shapes_fidelity(images, attrs)
  assert perfect['joint_accuracy'] == 1.0 and perfect['x_r'] > 0.99
  # Swap colours only where captions do not name the colour: text scoring
  # does not notice, vector scoring does.
  wrong = images.copy()
  unnamed = ~attrs['mentions'][:, 0]
  wrong[unnamed] = wrong[unnamed][..., ::-1]  # RGB -> BGR
  text = metrics.shapes_fidelity(wrong, attrs, mentions=attrs['mentions'])
  vec = metrics.shapes_fidelity(wrong, attrs)
  assert text['colour_accuracy'] == 1.0 and text['joint_accuracy'] == 1.0
  assert vec['colour_accuracy'] < 0.95 and vec['joint_accuracy'] < 0.95
  assert perfect['single_object'] == 1.0
  assert 'kind_accuracy_position_open' not in perfect  # vector scoring
  assert text['kind_accuracy_position_open'] == 1.0
  # Blank every image whose caption leaves the position open: only the
  # open-position kind accuracy falls, and no shape is drawn there.
  open_ = ~attrs['mentions'][:, 2]
  blank = images.copy()
  blank[open_] = 0
  got = metrics.shapes_fidelity(blank, attrs, mentions=attrs['mentions'])
  assert got['kind_accuracy_position_named'] == 1.0
  assert got['single_object'] == pytest.approx(1 - open_.mean())
  assert got['kind_accuracy_position_open'] == pytest.approx(
      np.mean(attrs['kind'][open_] == 0))  # an empty image reads as kind 0


def test_digit_fidelity_scores_digit_words_and_measurements():
  from gensynth.data import morpho  # pylint: disable=g-import-not-at-top
  shifts, widths = [0.0, 0.4, -0.4, 0.0, 0.2, -0.2], [2, 2, 2, 5, 3, 4]
  digits = np.stack([helpers.slanted_bar(s, w) for s, w in zip(shifts, widths)])
  asked = morpho.morphometrics(digits)
  labels = np.array([1, 1, 7, 7, 4, 4])
  same = metrics.digit_fidelity(labels, labels, asked, asked)
  assert same['digit_accuracy'] == 1.0 and same['joint_accuracy'] == 1.0
  assert same['thickness_word_accuracy'] == 1.0
  assert same['thickness_r'] == pytest.approx(1.0)
  assert same['slant_mae'] == 0.0
  # Every bar drawn two pixels thicker: slant still obeyed, thickness not.
  thick = morpho.morphometrics(np.stack([helpers.slanted_bar(s, w + 2) for s, w in
                                         zip(shifts, widths)]))
  got = metrics.digit_fidelity(labels, [1, 2, 7, 7, 4, 5], asked, thick)
  assert got['digit_accuracy'] == pytest.approx(4 / 6)
  assert got['digit_per_value'][1] == 0.5 and got['digit_per_value'][0] \
      is None
  assert got['slant_word_accuracy'] == 1.0
  assert got['thickness_word_accuracy'] < 1.0
  assert got['thickness_mae'] > 1.0
  assert got['joint_accuracy'] <= got['thickness_word_accuracy']
  with pytest.raises(errors.InputError, match=r'\[N, 5\]'):
    metrics.digit_fidelity(labels, labels, asked[:, :3], asked[:, :3])


def test_caption_describes_and_r_precision_among_mismatched_captions():
  images, attrs = shapes.make_attribute_shapes(300, seed=6)
  del images
  d = metrics.caption_describes(attrs, attrs['mentions'])
  assert d.shape == (300, 300) and d.diagonal().all()
  assert not d[attrs['kind'][:, None] != attrs['kind'][None, :]].any()
  i, j = np.argwhere(d & ~np.eye(300, dtype=bool))[0]
  for m, attr in enumerate(('colour', 'size', 'position')):
    assert not attrs['mentions'][j, m] or attrs[attr][i] == attrs[attr][j]
  # Twenty groups of five rows with one embedding per group: a caption of
  # the same group is as true of an image as its own, and with a little
  # noise often ranks above it; drawn only among mismatched captions, every
  # image finds its own.
  rng = np.random.default_rng(0)
  group = np.repeat(np.arange(20), 5)
  base = rng.normal(size=(20, 16))[group]
  texts = base + 0.05 * rng.normal(size=base.shape)
  same = group[:, None] == group[None, :]
  plain = text_match.r_precision(base, texts, num_candidates=40)
  mismatched = text_match.r_precision(base, texts, num_candidates=40,
                                      describes=same)
  assert mismatched == 1.0 and plain < 0.9
  with pytest.raises(errors.InputError, match='mismatched captions'):
    text_match.r_precision(base, texts, num_candidates=97, describes=same)


def test_captions_compatible_only_where_no_named_attribute_differs():
  images, attrs = shapes.make_attribute_shapes(300, seed=6)
  del images
  ment = attrs['mentions']
  c = metrics.captions_compatible(attrs, ment)
  assert c.shape == (300, 300) and c.diagonal().all() and (c == c.T).all()
  # Every pair of captions, checked by hand.
  for i in range(0, 300, 7):
    for j in range(300):
      want = attrs['kind'][i] == attrs['kind'][j] and all(
          not (ment[i, m] and ment[j, m]) or attrs[a][i] == attrs[a][j]
          for m, a in enumerate(('colour', 'size', 'position')))
      assert c[i, j] == want, (i, j)
  # A caption true of image i is compatible with caption i (image i obeys
  # both), so contradicting captions are among the mismatched ones.
  d = metrics.caption_describes(attrs, ment)
  assert not (d & ~c).any()
  # A caption that leaves the position open is compatible with one that
  # names a place, though false of the dataset image drawn elsewhere.
  open_ = np.flatnonzero(~ment[:, 2])
  assert (c & ~d)[open_].any()


def test_r_precision_separates_matching_from_shuffled_pairs():
  images, attrs = shapes.make_attribute_shapes(400, seed=5)
  vocab = conditions.Vocabulary.build(attrs['caption'])
  tokens = vocab.encode(attrs['caption'])
  model, params = text_match.train(images[:300], tokens[:300], vocab.size,
                                   steps=80, batch_size=64)
  img = text_match.embed(model, params, images=images[300:], batch_size=100)
  txt = text_match.embed(model, params, tokens=tokens[300:], batch_size=100)
  np.testing.assert_allclose(np.linalg.norm(img, axis=-1), 1.0, rtol=1e-4)
  matched = text_match.r_precision(img, txt, num_candidates=20)
  shuffled = text_match.r_precision(img[::-1], txt, num_candidates=20)
  assert matched > 0.3 > 0.15 > shuffled
  with pytest.raises(errors.InputError, match='num_candidates'):
    text_match.r_precision(img[:10], txt[:10], num_candidates=20)


def test_group_spread_and_value_entropy_are_exact_on_known_groups():
  # Group 0: two points 3-4-5 apart plus their midpoint; group 1: one point
  # three times (no spread).
  groups = np.array([[[0.0, 0.0], [3.0, 4.0], [1.5, 2.0]],
                     [[1.0, 1.0], [1.0, 1.0], [1.0, 1.0]]])
  got = metrics.group_spread(groups)
  assert got['per_group'] == pytest.approx([(5.0 + 2.5 + 2.5) / 3, 0.0])
  assert got['mean_distance'] == pytest.approx(5.0 / 3)
  ent = metrics.value_entropy(np.array([[0, 1, 2, 3], [2, 2, 2, 2],
                                        [0, 0, 1, 1]]), 4)
  np.testing.assert_allclose(ent, [np.log(4), 0.0, np.log(2)])
  with pytest.raises(errors.InputError, match=r'S >= 2'):
    metrics.group_spread(np.zeros((3, 1, 2)))
  with pytest.raises(errors.InputError, match=r'values must lie in 0\.\.3'):
    metrics.value_entropy(np.array([[0, 4]]), 4)


def test_shapes_diversity_tells_a_collapsed_model_from_the_data():
  """Real images a caption is true of vary in what it leaves open; a
  'model' that repeats one image per caption has zero spread, and one that
  varies only the background has pixel spread but no attribute spread."""
  images, attrs = shapes.make_attribute_shapes(4000, seed=2)
  m, s = 12, 6
  # Conditions: 'a <kind>' (colour, size and position open).
  groups = np.stack([np.flatnonzero(attrs['kind'] == k % 6)[
      (k // 6) * s:(k // 6 + 1) * s] for k in range(m)])
  real = images[groups]
  open_mask = np.ones((m, 3), bool)
  same = np.repeat(real[:, :1], s, axis=1)
  got = metrics.shapes_diversity(real, real, open_mask)
  assert got['pixel_distance_ratio'] == pytest.approx(1.0)
  assert got['real']['position_open_entropy'] > 1.0
  assert got['real']['x_std'] > 0.1
  collapsed = metrics.shapes_diversity(same, real, open_mask)
  assert collapsed['generated']['pixel_distance'] == pytest.approx(0, abs=1e-6)
  assert collapsed['position_open_entropy_ratio'] == 0.0
  assert collapsed['x_std_ratio'] == pytest.approx(0, abs=1e-5)
  # A condition that names everything leaves no attribute open.
  named = metrics.shapes_diversity(real, real, None)
  assert named['generated']['colour_open_entropy'] is None
  assert named['colour_open_entropy_ratio'] is None
  with pytest.raises(errors.InputError, match=r'open_mask must be \[12, 3\]'):
    metrics.shapes_diversity(real, real, open_mask[:3])
  with pytest.raises(errors.InputError, match='of one shape'):
    metrics.shapes_diversity(real, real[:, :2], open_mask)


def test_diversity_reference_groups_are_the_nearest_or_the_described():
  from gensynth.evaluation import conditions as ev  # pylint: disable=g-import-not-at-top
  pool = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 1.0], [9.0, 0.5],
                   [0.1, 0.2]])
  # Each component is scaled by the pool's std (4.65 and 0.38): for
  # (10, 0.4), row 3 (9, 0.5) is nearer than row 1 (10, 0), which unscaled
  # distances would rank first.
  got = ev._nearest(np.array([[0.0, 0.0], [10.0, 0.4]]), pool, 2)  # pylint: disable=protected-access
  assert got.tolist() == [[0, 4], [3, 1]]
  rows = np.array([[True, False, True, True], [True, False, False, False]])
  idx, keep = ev._pool_groups(rows, 2, np.random.default_rng(0))  # pylint: disable=protected-access
  assert keep.tolist() == [0] and set(idx[0]) <= {0, 2, 3}
  assert len(set(idx[0])) == 2
