import numpy as np
import pytest
import scipy.sparse
import scipy.sparse.linalg
import skimage.data

from gensynth.synth import blend


def _reference(source, target, mask):
  """Direct sparse solve of the same Dirichlet Poisson system (one channel)."""
  h, w = mask.shape
  idx = -np.ones((h, w), int)
  inside = np.argwhere(mask)
  idx[mask] = np.arange(len(inside))
  rows, cols, vals, rhs = [], [], [], np.zeros(len(inside))
  for k, (y, x) in enumerate(inside):
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
      ny, nx = y + dy, x + dx
      if not (0 <= ny < h and 0 <= nx < w):
        continue
      rows.append(k); cols.append(k); vals.append(1.0)
      rhs[k] += source[y, x] - source[ny, nx]
      if mask[ny, nx]:
        rows.append(k); cols.append(idx[ny, nx]); vals.append(-1.0)
      else:
        rhs[k] += target[ny, nx]
  a = scipy.sparse.csr_matrix((vals, (rows, cols)), (len(inside),) * 2)
  out = target.copy()
  out[mask] = scipy.sparse.linalg.spsolve(a, rhs)
  return out


def test_matches_direct_sparse_solve():
  tgt = skimage.data.camera()[100:140, 100:150].astype(np.float64) / 255
  src = skimage.data.moon()[:40, :50].astype(np.float64) / 255
  mask = np.zeros((40, 50), bool)
  mask[8:30, 10:42] = True
  out = blend.poisson_blend(src[..., None], tgt[..., None], mask, tol=1e-10,
                            maxiter=20000)
  np.testing.assert_allclose(np.asarray(out)[..., 0],
                             _reference(src, tgt, mask), atol=2e-4)


def test_offset_source_reproduces_target_and_outside_is_exact():
  tgt = skimage.data.astronaut()[:48, :48].astype(np.float32) / 255
  mask = np.zeros((48, 48), np.float32)
  mask[10:38, 12:40] = 1
  out = np.asarray(blend.poisson_blend(tgt + 0.3, tgt, mask))
  np.testing.assert_allclose(out, tgt, atol=2e-3)
  out2 = np.asarray(blend.poisson_blend(np.zeros_like(tgt), tgt, mask,
                                        mixed=True))
  np.testing.assert_array_equal(out2[mask == 0], tgt[mask == 0])


def test_validation():
  with pytest.raises(ValueError, match='mask: shape'):
    blend.poisson_blend(np.zeros((8, 8, 3)), np.zeros((8, 8, 3)),
                        np.zeros((4, 4)))
