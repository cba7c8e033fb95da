"""Rendering: every HTML page and Markdown report kfops writes, apart from the numbers in it.

The calculation lives with its domain (``evaluation.evaluate``, ``drift.detect_drift``,
``monitoring.run_monitoring``, ``tuning.summary``, ...) as pure functions returning dataclasses;
this package only turns those into text, with one page shell and one stylesheet
(``html``) and one number formatter (``fmt``):

- ``evaluation``: the evaluation page (metrics, confusion matrix, ROC or residual plots);
- ``drift``: the drift report, as a page or as a section of another report;
- ``monitoring``: the monitoring window's page and Markdown summary.
"""
