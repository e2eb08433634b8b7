"""2.5D segmentation for stock nnU-Net v2."""
from pathlib import Path

__version__ = "0.3.1"

TRAINER_FOLDER = Path(__file__).resolve().parent / "trainers" / "lookup"
"""Point ``nnUNet_extTrainer`` here so that ``nnUNetv2_train -tr nnUNetTrainer25D`` finds the plugin's trainers."""
