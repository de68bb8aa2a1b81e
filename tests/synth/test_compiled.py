"""Public ops called eagerly run as one compiled program per shape/setting."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gensynth import errors
from gensynth.metrics import image as image_metrics
from gensynth.synth import blend
from gensynth.synth import compiled
from gensynth.synth import fusion
from gensynth.synth import pyramid
from gensynth.synth import warp


def _imgs(rng, n=2, hw=(20, 24), c=3):
  return [rng.uniform(0, 1, hw + (c,)).astype(np.float32) for _ in range(n)]


def test_one_compile_per_shape_and_setting(rng):
  op = compiled.op(lambda images, levels=3: pyramid.reconstruct(
      pyramid.laplacian_pyramid(jnp.stack(images).mean(0), levels)))
  a = _imgs(rng)
  op(a)
  op(_imgs(rng))  # new values, same shapes: no new program
  assert op.compiled._cache_size() == 1
  op(a, levels=2)  # a new static setting compiles anew
  op(_imgs(rng, hw=(9, 11)))  # and so does a new shape
  assert op.compiled._cache_size() == 3
  op(a, levels=2)
  assert op.compiled._cache_size() == 3


def test_static_values_of_equal_hash_but_other_type_are_kept_apart():
  op = compiled.op(lambda x, scale: x * 2 if isinstance(scale, bool) else
                   x * scale)
  x = np.ones(3, np.float32)
  np.testing.assert_array_equal(op(x, 1), x)
  np.testing.assert_array_equal(op(x, True), 2 * x)
  np.testing.assert_array_equal(op(x, 1.0), x)


@pytest.mark.parametrize('name,call', [
    ('multifocus_fusion', lambda a, b: fusion.multifocus_fusion([a, b],
                                                               levels=3)),
    ('exposure_fusion', lambda a, b: fusion.exposure_fusion([a, b])),
    ('multiband_blend', lambda a, b: blend.multiband_blend(
        [a, b], blend.two_image_masks(np.full(a.shape[:2], 0.3, np.float32)),
        levels=3)),
    ('ssim', image_metrics.ssim),
])
def test_eager_call_equals_the_op_traced_inline(rng, name, call):
  a, b = _imgs(rng)
  eager = np.asarray(call(a, b))
  # Under the caller's vmap the op is traced inline (no nested program).
  inline = np.asarray(jax.vmap(call)(a[None], b[None])[0])
  np.testing.assert_allclose(eager, inline, atol=1e-5, err_msg=name)
  assert call(a, b).shape == eager.shape


def test_value_checks_still_name_the_argument(rng):
  a, b = _imgs(rng)
  b[3, 4, 1] = np.nan
  with pytest.raises(errors.InputError, match=r'images\[1\]: holds NaN'):
    fusion.multifocus_fusion([a, b], levels=2)
  with pytest.raises(errors.InputError, match=r'b: holds NaN'):
    image_metrics.ssim(a, jnp.asarray(b))
  with pytest.raises(errors.InputError, match=r'weights\[1\]: holds NaN'):
    blend.weighted_blend([a, a], [0.5, float('nan')])
  # Shape checks run while the op is traced, with the same messages.
  with pytest.raises(errors.InputError, match=r'inputs must share one shape'):
    fusion.multifocus_fusion([a, a[:10]], levels=2)
  # A Python-level mistake keeps Python's own error.
  with pytest.raises(TypeError):
    fusion.multifocus_fusion([a, a], levels=2, bogus=1)


def test_new_values_of_a_traced_list_reuse_the_program(rng):
  a, b = _imgs(rng)
  blend.weighted_blend([a, b], [0.2, 0.8])
  before = blend.weighted_blend.compiled._cache_size()
  out = blend.weighted_blend([a, b], [0.6, 0.4])
  assert blend.weighted_blend.compiled._cache_size() == before
  np.testing.assert_allclose(out, 0.6 * a + 0.4 * b, atol=1e-6)


def test_an_ops_own_value_checks_run_on_the_host(rng):
  img = _imgs(rng, n=1)[0]
  with pytest.raises(errors.InputError, match='h is singular'):
    warp.warp_perspective(img, np.zeros((3, 3), np.float32), (8, 8))
  with pytest.raises(errors.InputError, match='h: shape'):
    warp.warp_perspective(img, np.eye(2, dtype=np.float32), (8, 8))
  h = np.array([[1, 0.1, 2], [0, 1, -1], [0, 0, 1]], np.float32)
  eager = warp.warp_perspective(img, h, (12, 10))
  jitted = jax.jit(warp.warp_perspective, static_argnums=2)(img, h, (12, 10))
  for a, b in zip(eager, jitted):
    np.testing.assert_allclose(a, b, atol=1e-6)
  before = warp.warp_perspective.compiled._cache_size()
  warp.warp_perspective(img * 0.5, h * 1.01, (12, 10))
  assert warp.warp_perspective.compiled._cache_size() == before


@pytest.fixture
def trace_cache(tmp_path):
  """The trace cache on in a fresh directory for one test (it is process
  state, like JAX's compilation cache directory), off again after."""
  compiled.set_trace_cache(tmp_path / 'traces')
  yield tmp_path / 'traces'
  compiled.set_trace_cache(None)


def _counting(calls):
  def f(x, y, *, scale):
    calls.append(x.shape)
    return jnp.sin(x) * scale + y
  return f


def test_trace_cache_loads_what_another_process_traced(trace_cache):
  calls = []
  x = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
  first = compiled.jit(_counting(calls), static_argnames='scale')
  want = np.sin(x) * 2.0 + 1.0
  np.testing.assert_allclose(first(x, 1.0, scale=2.0), want, rtol=1e-6)
  assert len(calls) == 1 and len(os.listdir(trace_cache)) == 1
  # A new wrapper of the same function stands for a new process: it loads
  # the program and never runs the Python body.
  counts = compiled.trace_cache_counts()
  again = compiled.jit(_counting(calls), static_argnames='scale')
  np.testing.assert_allclose(again(x, 1.0, scale=2.0), want, rtol=1e-6)
  assert len(calls) == 1
  assert compiled.trace_cache_counts()['loaded'] == counts['loaded'] + 1
  # A new static setting, a new shape or dtype: traced and saved anew.
  again(x, 1.0, scale=3.0)
  again(x[:2], 1.0, scale=3.0)
  again(x.astype(np.float16), 1.0, scale=3.0)
  assert len(calls) == 4 and len(os.listdir(trace_cache)) == 4
  # Inside the caller's own jit the function is traced inline, not cached.
  jax.jit(lambda a: again(a, 0.0, scale=2.0))(x)
  assert len(calls) == 5 and len(os.listdir(trace_cache)) == 4


def test_trace_cache_keys_on_gensynths_source(trace_cache, monkeypatch):
  calls = []
  x = np.ones(3, np.float32)
  compiled.jit(_counting(calls), static_argnames='scale')(x, 0.0, scale=1.0)
  monkeypatch.setattr(compiled, '_source_digest', lambda: 'edited')
  compiled.jit(_counting(calls), static_argnames='scale')(x, 0.0, scale=1.0)
  assert len(calls) == 2 and len(os.listdir(trace_cache)) == 2


def test_trace_cache_replaces_a_damaged_entry(trace_cache, caplog):
  calls = []
  x = np.ones(3, np.float32)
  compiled.jit(_counting(calls), static_argnames='scale')(x, 0.0, scale=1.0)
  (entry,) = os.listdir(trace_cache)
  (trace_cache / entry).write_bytes(b'not a program')
  out = compiled.jit(_counting(calls), static_argnames='scale')(
      x, 0.0, scale=1.0)
  np.testing.assert_allclose(out, np.sin(x), rtol=1e-6)
  assert len(calls) == 2 and 'unreadable' in caplog.text
  assert (trace_cache / entry).read_bytes() != b'not a program'


def test_trace_cache_keeps_input_errors_and_its_size_bound(trace_cache, rng):
  a, b = _imgs(rng)
  with pytest.raises(errors.InputError, match=r'inputs must share one shape'):
    fusion.multifocus_fusion([a, b[:10]], levels=2)
  np.testing.assert_allclose(
      fusion.multifocus_fusion([a, b], levels=2),
      jax.jit(fusion.multifocus_fusion, static_argnames='levels')(
          [a, b], levels=2), atol=1e-6)
  compiled.set_trace_cache(trace_cache, max_mb=0)  # room for nothing
  compiled.jit(_counting([]), static_argnames='scale')(a, 0.0, scale=1.0)
  assert not [n for n in os.listdir(trace_cache) if n.endswith('.exported')]


def test_trace_cache_lets_a_traced_function_call_an_op_eagerly(trace_cache):
  # While f is exported (under the cache's lock), it calls a public op on a
  # concrete constant, which goes through the cache itself: no deadlock.
  import threading  # pylint: disable=g-import-not-at-top
  const = np.full((4, 5, 3), 0.25, np.float32)

  def f(x):
    return x + blend.weighted_blend([const, const], [0.5, 0.5])

  out = []
  worker = threading.Thread(
      target=lambda: out.append(compiled.jit(f)(np.ones((4, 5, 3),
                                                        np.float32))))
  worker.start()
  worker.join(120)
  assert not worker.is_alive() and out
  np.testing.assert_allclose(out[0], 1.25, rtol=1e-6)
