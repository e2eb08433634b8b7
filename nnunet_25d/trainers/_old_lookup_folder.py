"""Where ``nnUNet_extTrainer`` still points at ``.../nnunet_25d/trainers`` (the trainer folder of nnunet_25d 0.1),
nnU-Net's lookup imports this module first (its name sorts before the others) as a top-level module: say in one
line where the folder is now, instead of letting nnU-Net import every trainer module a second time."""
from pathlib import Path

if "." not in __name__:  # imported from the folder by nnU-Net's lookup, not as part of the package
    from nnunet_25d import TRAINER_FOLDER
    from nnunet_25d.errors import SetupError

    raise SetupError(f"nnunet_25d: nnUNet_extTrainer points at {Path(__file__).resolve().parent}, the trainer "
                     f"folder of nnunet_25d 0.1; it is now {TRAINER_FOLDER}. Run  eval \"$(nnunet25d env)\"  and "
                     f"update the nnUNet_extTrainer line in your shell profile.")
