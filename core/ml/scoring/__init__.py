"""Scoring with a registered model, in bounded memory.

:mod:`.artifacts` loads the model file safely, :mod:`.chunking` streams a Parquet file in bounded
memory, :mod:`.prediction` scores it chunk by chunk.
"""
