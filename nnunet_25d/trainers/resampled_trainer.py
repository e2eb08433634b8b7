"""nnUNetTrainer25DResampled: the slab model on slices resampled to one spacing."""
from __future__ import annotations

from nnunet_25d.trainers.slab_trainer import nnUNetTrainer25D


class nnUNetTrainer25DResampled(nnUNetTrainer25D):
    """nnUNetTrainer25D on ``3d_fullres``'s preprocessed data: the 2d plan's network, patch and in-plane grid, but
    every case's slices resampled to the dataset's median spacing, so a slab spans the same millimetres in every
    case (on the ``2d`` data each case keeps its own slice thickness). Train it as ``nnUNetv2_train DATASET 2d
    FOLD -tr nnUNetTrainer25DResampled`` after ``nnUNetv2_plan_and_preprocess -c 2d 3d_fullres``; prediction
    resamples each test case like 3d_fullres does, and back.
    """

    data_configuration = "3d_fullres"
