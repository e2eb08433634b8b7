"""``nnunet25d benchmark``: five-fold cross-validation of the 2.5D variants against nnU-Net's own baselines."""
