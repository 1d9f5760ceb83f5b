"""Clinical validation (seed 002): image + finding + treatment / ICD code -> ERROR or CORRECT.

Modules (import them directly; this package imports nothing at import time):

* :mod:`~physio_ray.clinical.data`: typed loader of the medbilldozer-clinical folder + data report;
* :mod:`~physio_ray.clinical.quality`, :mod:`~physio_ray.clinical.consistency`,
  :mod:`~physio_ray.clinical.images`: the data-quality checks and the image measurements behind them;
* :mod:`~physio_ray.clinical.parsing`: strict ERROR / CORRECT verdict parsing;
* :mod:`~physio_ray.clinical.reward`: seed 002's severity-weighted reward (+ a TRL GRPO adapter);
* :mod:`~physio_ray.clinical.splits`: image-grouped cross-validation;
* :mod:`~physio_ray.clinical.metrics`, :mod:`~physio_ray.clinical.baseline`: metrics, the
  image_type shortcut baseline, markdown tables;
* :mod:`~physio_ray.clinical.prompts`: prompt templates and SFT / GRPO records;
* :mod:`~physio_ray.clinical.features`: Phase 1 open_clip image features -> nearest finding text.
"""
