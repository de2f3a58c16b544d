"""One module per pipeline stage, in pipeline order: ``benchmarks`` -> ``data`` (questions, teacher,
dual pairs) -> ``keysteps`` -> ``train`` -> ``evaluate`` -> ``report`` (and ``explore``). Each has a
``run(...)`` that its notebook calls once; the library modules they call do the work.

This file imports nothing, so importing one stage never drags in another (the DVC deps of a stage
are the modules its notebook reaches, see tests/test_structure.py)."""
