"""Condition-fidelity metrics and the R-precision evaluator."""

import numpy as np
import pytest

from gensynth import errors
from gensynth.data import conditions
from gensynth.data import shapes
from gensynth.evaluation import text_match
from gensynth.metrics import conditions as metrics


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
