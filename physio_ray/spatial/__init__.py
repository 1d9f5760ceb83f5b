"""Spatial surgical VQA (seed 001): PitVQA regions, dataset builder, rewards, metrics, rendering.

Modules: ``pitvqa`` (CSV vocabulary, position classes, per-second labels), ``regions`` (region
geometry on the 0-100 scale), ``records`` (chat-record formats), ``dataset`` (the builder),
``rewards`` (GRPO spatial reward), ``metrics`` (evaluation), ``render`` (synthetic frames),
``frames`` (1 fps frame extraction from PitVis videos), ``config`` (job config), ``token_probe``
(linear probes on a trained model's tip token: where instrument identity is lost).
"""
