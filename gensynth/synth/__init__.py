"""Image synthesis ops: pyramids, blending, fusion, stitching.

Pure functions on float images shaped [..., H, W, C] (dm_pix style): leading
axes are batch axes, so every op works on one image, a batch, and under
jax.vmap. Shape and dtype problems raise gensynth.errors.InputError (a
ValueError) at trace time.
"""
