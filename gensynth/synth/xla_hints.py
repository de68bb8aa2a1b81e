"""Hints that steer XLA's fusion (values unchanged), for the synthesis ops.

Both are XLA:CPU speed work: each says why and names the benchmark that
measures it; the figures are in BUILD_NOTES.md ("Synthesis vs OpenCV").
"""

import jax
import jax.numpy as jnp


def sum_leading(x):
  """x.sum(axis=0) as unrolled adds over the (small, static) leading axis.

  Why: XLA:CPU lowers a reduction over a short leading axis of a large array
  to a slow loop, while unrolled adds fuse into one elementwise pass
  (`launch.benchmark --bench=pyramid_blend`).
  """
  out = x[0]
  for i in range(1, x.shape[0]):
    out = out + x[i]
  return out


def materialise(x):
  """x (an array or a pytree of arrays), computed into its own buffers before
  any consumer runs. Values are unchanged; this only steers XLA's fusion.

  XLA:CPU fuses producers into consumers even where that recomputes them many
  times over (a 7x7 blur of Sobel products fused into a 3x3 max filter reads
  each input pixel hundreds of times; a bilinear warp fused into a padding
  copy redoes every gather), and lax.optimization_barrier does not prevent it
  there (it is expanded away before fusion). Fusion cannot cross a
  conditional, so x passes through one whose branches both return it; the
  branch depends on x's values, so the compiler cannot fold it away
  (`launch.benchmark --bench=panorama`).
  """
  leaves = jax.tree_util.tree_leaves(x)
  if not leaves:
    return x
  first = leaves[0]
  pred = first.reshape(-1)[0] > 0 if first.size else jnp.asarray(True)

  def same(a):  # equal values, but a branch the compiler cannot merge
    return a | False if a.dtype == jnp.bool_ else a + 0

  return jax.lax.cond(pred, lambda v: v,
                      lambda v: jax.tree_util.tree_map(same, v), x)


def unrolled(op, terms):
  """`op` folded over `terms` left to right (e.g. jnp.add over channels).

  Why: XLA:CPU runs reductions over a short channel axis as slow loops (as
  over a short leading axis, see `sum_leading`); unrolled they fuse
  (`launch.benchmark --bench=exposure_fusion`).
  """
  out = terms[0]
  for t in terms[1:]:
    out = op(out, t)
  return out
