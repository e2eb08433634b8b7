"""Learned view fusion: per-model, per-class weights learned on cross-validation probabilities (nested by fold),
applied to ``nnUNetv2_predict --save_probabilities`` outputs."""
