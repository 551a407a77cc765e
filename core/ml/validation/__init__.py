"""Validating one ISO week of raw data, from the dataset spec.

Two kinds of check run on a week's frame, all derived from the spec's columns:

* **batch-level** checks: any failure rejects the whole week (it is quarantined whole). They are
  the column set, the row count, unique ids, numeric dtypes, no entirely-null column and no
  feature leaking the label;
* **row-level** checks: rows failing any of them are quarantined and the rest go on, unless more
  than ``max_bad_row_fraction`` of the rows fail, which rejects the whole week too.

One module per job: :mod:`.reading` parses a week's file, :mod:`.expectations` builds the Great
Expectations suite and reads its results, :mod:`.leaks` looks for features leaking the label,
:mod:`.week` runs them all into a :class:`.outcome.ValidationOutcome`, and :mod:`.report` writes
the Markdown report a human reads.
"""
