"""The quality report: each learned part's held-out figures beside their trivial baselines.

``jobs/report_quality.py`` reads the output folders of the other jobs (annotation, PRM
training, Best-of-N, the spatial and clinical recipes) and writes ``quality.json`` /
``quality.md`` / ``quality.png`` (:mod:`physio_ray.quality.report`). Row builders, one per
component, are listed in :mod:`physio_ray.quality.registry`; the learned rule is in
:mod:`physio_ray.quality.rows`.
"""
