"""One report engine for the demo (``report.md``/``report.png``) and the benchmark (``benchmark.md``/``benchmark.png``).

Callers turn their results into :class:`~nnunet_25d.report.rows.ModelRow` s (scores per split x metric x class,
costs, curves, load) and a :class:`~nnunet_25d.report.setting.ReportSetting` (dataset, schedule, folds, classes,
machine); the engine renders them:

- ``metrics``: how a metric is named, formatted and which direction is better
- ``rows``: the data model (scores, model rows, paired differences)
- ``setting``: dataset, schedule, folds, splits and classes, and the title built from them
- ``machine``: CPU/GPU model, cores, torch and nnU-Net versions
- ``load``: the cores other processes used while nnU-Net ran, and the flag for timings that shared the CPUs
- ``tables``: Markdown and CSV tables
- ``figures``: the overview figure and per-case box plots
- ``segmentations``: which cases, slices and rows the segmentation figures show, per-slice Dice, slice counts
- ``segmentation_figures``: "What the models segment": a slice, the view across the slices and the Dice per slice
  of chosen cases, each with a one-line reading
- ``interpretation``: the two sentences that open a report
- ``document``: the report's parts top-down (verdict, key table, other tables, Methods at the end)
"""
