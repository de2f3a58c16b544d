"""The paper's result tables and figures from the evaluated runs, with seeds and significance.

Modules, in the order the report uses them:
  runs    - run folders -> long accuracy and per-item frames; which runs of which student are read
  scores  - per-seed suite scores (macro / micro, AVG) and their mean and std over seeds
  stats   - significance: paired t-test over seeds, paired bootstrap over items, noise verdicts
  spec    - the table specification (``DEFAULT_TABLES``, overridable under ``report.tables`` in params.yaml)
  tables  - one spec table as numbers and strings, the paper's rows beside ours, CSV/MD/TeX files
  figures - accuracy bars, the KRSL alpha/beta heat map, accuracy by student, placeholders
  make    - ``make_report``: every table, figure and the noise summary of a configuration

This file imports nothing, so importing one submodule drags in no other.
"""
