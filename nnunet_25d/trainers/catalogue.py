"""What each hand-written trainer is, for ``nnunet25d trainers``: the configuration to train it with and its source,
as data; the one-line description is the class docstring's first line."""
from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

from nnunet_25d.trainers.border_loss_trainer import BORDER_LOSS_SUFFIX
from nnunet_25d.trainers.registry import HAND_WRITTEN_BY_NAME
from nnunet_25d.trainers.variants import CPU_SCHEDULES, EPOCHS, SLAB_SIZES

UV_NET = "UV-Net (liver tumour CT)"
WANG = "Wang et al., MICCAI 2019"
MORPH_MLP = "MorphMLP, ECCV 2022"
THIS_PLUGIN = "this plugin"

# name -> (configuration to train it with, source)
GUIDE: dict[str, tuple[str, str]] = {
    "nnUNetTrainer25D": ("2d", "RIU-Net's slab input, self-configured"),
    "nnUNetTrainer25DResampled": ("2d", THIS_PLUGIN),
    "nnUNetTrainer25DFusion": ("2d", "UV-Net's depth reduction"),
    "nnUNetTrainer25DMorphMLP": ("2d", MORPH_MLP),
    "nnUNetTrainer25DDeepLab": ("2d", "DeepLabv3+ 2.5D (kidney tumour CT)"),
    "nnUNetTrainer25DASPP": ("2d", "DeepLabv3's ASPP on nnU-Net's U-Net"),
    "nnUNetTrainer25DUVNet": ("2d", UV_NET),
    "nnUNetTrainer25DRIUNet": ("2d", "RIU-Net, Lv et al., BSPC 2022"),
    "nnUNetTrainer25DRIUNet_Factorised": ("2d", "RIU-Net, Lv et al., BSPC 2022 (ablation)"),
    "nnUNetTrainer25DPsiNet": ("2d", "Ψ-Net, Kuang et al., CMPB 2020"),
    "nnUNetTrainer25DAniso": ("3d_fullres", WANG),
    "nnUNetTrainer25DAniso_NoAttention": ("3d_fullres", WANG + " (ablation)"),
    "nnUNetTrainer25DAniso_NoAttentionLoss": ("3d_fullres", WANG + " (ablation)"),
    "nnUNetTrainer25DAniso_AttentionAfterStage": ("3d_fullres", WANG + " (ablation)"),
    "nnUNetTrainer25DAniso_HardnessDice": ("3d_fullres", WANG + " (loss ablation)"),
    "nnUNetTrainer25DAniso_PaperLoss": ("3d_fullres", WANG),
    "nnUNetTrainer25DAniso_HardnessDiceDetached": ("3d_fullres", WANG + " (ablation)"),
    "nnUNetTrainer25DMorphMLP_S": ("2d", MORPH_MLP),
    "nnUNetTrainer25DMorphMLP_N": ("2d", MORPH_MLP),
    "nnUNetTrainer25DMorphMLP_N_SGD": ("2d", MORPH_MLP + " (ablation)"),
    "nnUNetTrainer25DMorphMLP_LinearPatches": ("2d", MORPH_MLP + " (ablation)"),
    "nnUNetTrainer25DMorphMLP_N_LinearPatches": ("2d", MORPH_MLP + " (ablation)"),
    "nnUNetTrainer25DAxial": ("3d_fullres", "multi-view 2.5D"),
    "nnUNetTrainer25DCoronal": ("3d_fullres", "multi-view 2.5D"),
    "nnUNetTrainer25DSagittal": ("3d_fullres", "multi-view 2.5D"),
    "nnUNetTrainer25DPEAttention": ("2d", "Mei et al., 2021 (nasopharynx GTV)"),
    "nnUNetTrainer25D_DeepPatches": ("2d", THIS_PLUGIN + " (ablation)"),
    "nnUNetTrainer25D_SGD": ("2d", THIS_PLUGIN + " (ablation)"),
}

GRAMMAR = f"""Trainer names: <trainer>[{BORDER_LOSS_SUFFIX}][_<n>slices][_<E>epochs[_<I>iters]][_seed<N>]
  {BORDER_LOSS_SUFFIX}         border-weighted cross-entropy (every trainer above but Ψ-Net and the ablations of nnUNetTrainer25D)
  _<n>slices          slab size, n in {", ".join(map(str, SLAB_SIZES))} (slab trainers); _1slice for the view trainers (plain 2D in their plane)
  _<E>epochs          E in {", ".join(map(str, EPOCHS))} epochs of nnU-Net's 250 iterations (_1epoch for one)
  _<E>epochs_<I>iters CPU schedules: {", ".join(f"{e}x{i}" for e, i in CPU_SCHEDULES)} (also for nnU-Net's own nnUNetTrainer)
  _seed<N>            a seeded repeat (N >= 1) of any of these names, nnU-Net's nnUNetTrainer included
Example: nnUNetv2_train 501 2d 0 -tr nnUNetTrainer25D_5slices_10epochs_50iters"""


@dataclass(frozen=True)
class TrainerEntry:
    name: str
    configuration: str
    source: str
    description: str

    def line(self, name_width: int) -> str:
        return f"{self.name:<{name_width}}  {self.configuration:<10}  {self.description} [{self.source}]"


def describe(cls: type, width: int = 80) -> str:
    """The docstring's first sentence as plain text, cut to ``width`` characters."""
    doc = " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split())
    text = re.sub(r":\w+:`~?([^`]+)`", r"\1", doc).replace("``", "")
    sentence = re.split(r"(?<=[a-z)])\. ", text, maxsplit=1)[0].rstrip(".")
    return sentence if len(sentence) <= width else sentence[:width - 1].rstrip() + "…"


def entries(pattern: str | None = None) -> list[TrainerEntry]:
    """The hand-written trainers whose name matches ``pattern`` (a substring or a glob, case-insensitive)."""
    found = []
    for name, cls in HAND_WRITTEN_BY_NAME.items():
        if pattern and not _matches(name, pattern):
            continue
        configuration, source = GUIDE[name]
        found.append(TrainerEntry(name, configuration, source, describe(cls)))
    return found


def _matches(name: str, pattern: str) -> bool:
    name, pattern = name.lower(), pattern.lower()
    return fnmatch.fnmatchcase(name, pattern) if any(c in pattern for c in "*?[") else pattern in name


def listing(pattern: str | None = None) -> str:
    """The lines ``nnunet25d trainers`` prints: one per trainer, then the name grammar."""
    found = entries(pattern)
    if not found:
        return f"no trainer matches {pattern!r}\n\n{GRAMMAR}"
    width = max(len(entry.name) for entry in found)
    header = f"{'trainer':<{width}}  {'train as':<10}  what it is [source]"
    return "\n".join([header, *(entry.line(width) for entry in found), "", GRAMMAR])
