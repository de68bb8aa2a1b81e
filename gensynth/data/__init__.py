"""Data sources and the deterministic batch pipeline.

`load_split(config, split)` returns an in-memory `ArraySource` from any supported
source; `BatchIterator` turns it into a deterministic, resumable stream of
preprocessed NumPy batches (batch `t` is a pure function of `seed` and `t`).
"""

from gensynth.data.pipeline import ArraySource
from gensynth.data.pipeline import BatchIterator
from gensynth.data.pipeline import DataError
from gensynth.data.pipeline import encode_text
from gensynth.data.pipeline import eval_batches
from gensynth.data.pipeline import load_split
from gensynth.data.pipeline import preprocess
from gensynth.data.pipeline import to_unit
