"""Inference of slab models: the exact slab predictor and the ``nnunet25d predict`` command."""
