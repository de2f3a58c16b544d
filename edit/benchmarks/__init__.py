"""The real benchmarks (BBH, BB-sub, AGIEval, ARC) and the pinned mirror files, by job:

* :mod:`edit.benchmarks.sources` - the pinned source table ``edit/sources.json`` (sha256 + URL of
  every file read from the data mirror, prompt files included), download / cache / mirror
  resolution and verification;
* :mod:`edit.benchmarks.parsers` - the public file formats -> :class:`~edit.benchmarks.suites.BenchItem`;
* :mod:`edit.benchmarks.suites` - the common record, answer types, the BBH split, the selection of
  an ``eval.suites`` entry, and the suite files the stage writes.

The stage itself is :func:`edit.stages.benchmarks.run`. This file imports nothing.
"""
