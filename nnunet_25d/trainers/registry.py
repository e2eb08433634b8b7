"""Every trainer the plugin offers, by name.

The hand-written trainers are defined in their own modules. Their variants — ``_BorderLoss``, slab sizes
(``_5slices``), schedules (``_10epochs``, ``_10epochs_50iters``) and seeded repeats (``_seed2``) — are declared here
as data and made on demand from the name (:func:`trainer_class`), so nnU-Net's lookup builds only the classes it
asks for. A made class lives in this module's namespace (made again by name on unpickling), one class per name.
"""
import difflib
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunet_25d import TRAINER_FOLDER
from nnunet_25d.errors import TrainerNameError
from nnunet_25d.geometry.slab import SlabSizeError, check_slab_size
from nnunet_25d.trainers.aniso_trainer import (
    nnUNetTrainer25DAniso,
    nnUNetTrainer25DAniso_AttentionAfterStage,
    nnUNetTrainer25DAniso_HardnessDice,
    nnUNetTrainer25DAniso_HardnessDiceDetached,
    nnUNetTrainer25DAniso_NoAttention,
    nnUNetTrainer25DAniso_NoAttentionLoss,
    nnUNetTrainer25DAniso_PaperLoss,
)
from nnunet_25d.trainers.border_loss_trainer import BORDER_LOSS_SUFFIX, with_border_loss
from nnunet_25d.trainers.deeplab_trainer import nnUNetTrainer25DASPP, nnUNetTrainer25DDeepLab
from nnunet_25d.trainers.fusion_trainer import nnUNetTrainer25DFusion
from nnunet_25d.trainers.morph_mlp_trainer import (
    nnUNetTrainer25DMorphMLP,
    nnUNetTrainer25DMorphMLP_LinearPatches,
    nnUNetTrainer25DMorphMLP_N,
    nnUNetTrainer25DMorphMLP_N_LinearPatches,
    nnUNetTrainer25DMorphMLP_N_SGD,
    nnUNetTrainer25DMorphMLP_S,
)
from nnunet_25d.trainers.pe_attention_trainer import nnUNetTrainer25DPEAttention
from nnunet_25d.trainers.psi_net_trainer import nnUNetTrainer25DPsiNet
from nnunet_25d.trainers.resampled_trainer import nnUNetTrainer25DResampled
from nnunet_25d.trainers.riu_net_trainer import nnUNetTrainer25DRIUNet, nnUNetTrainer25DRIUNet_Factorised
from nnunet_25d.trainers.slab_ablations import nnUNetTrainer25D_DeepPatches, nnUNetTrainer25D_SGD
from nnunet_25d.trainers.seeds import split_seed, with_seed
from nnunet_25d.trainers.slab_trainer import nnUNetTrainer25D
from nnunet_25d.trainers.uv_net_trainer import nnUNetTrainer25DUVNet
from nnunet_25d.trainers.variants import (
    CPU_SCHEDULES,
    EPOCHS,
    SLAB_SIZES,
    VIEW_SLAB_SIZES,
    schedule_name,
    slab_suffix,
    split_trainer_name,
    with_schedule,
    with_slab_size,
)
from nnunet_25d.trainers.view_trainer import nnUNetTrainer25DAxial, nnUNetTrainer25DCoronal, nnUNetTrainer25DSagittal

SLAB_TRAINERS = (nnUNetTrainer25D, nnUNetTrainer25DResampled, nnUNetTrainer25DFusion, nnUNetTrainer25DMorphMLP,
                 nnUNetTrainer25DDeepLab, nnUNetTrainer25DASPP, nnUNetTrainer25DUVNet, nnUNetTrainer25DRIUNet,
                 nnUNetTrainer25DRIUNet_Factorised, nnUNetTrainer25DPsiNet)
VIEW_TRAINERS = (nnUNetTrainer25DAxial, nnUNetTrainer25DCoronal, nnUNetTrainer25DSagittal)
ANISO_TRAINERS = (nnUNetTrainer25DAniso, nnUNetTrainer25DAniso_NoAttention, nnUNetTrainer25DAniso_NoAttentionLoss,
                  nnUNetTrainer25DAniso_AttentionAfterStage, nnUNetTrainer25DAniso_HardnessDice,
                  nnUNetTrainer25DAniso_HardnessDiceDetached, nnUNetTrainer25DAniso_PaperLoss)
MORPH_MLP_VARIANTS = (nnUNetTrainer25DMorphMLP_S, nnUNetTrainer25DMorphMLP_N, nnUNetTrainer25DMorphMLP_N_SGD,
                      nnUNetTrainer25DMorphMLP_LinearPatches, nnUNetTrainer25DMorphMLP_N_LinearPatches)
PE_ATTENTION_TRAINERS = (nnUNetTrainer25DPEAttention,)
SLAB_ABLATIONS = (nnUNetTrainer25D_DeepPatches, nnUNetTrainer25D_SGD)
HAND_WRITTEN = SLAB_TRAINERS + ANISO_TRAINERS + MORPH_MLP_VARIANTS + VIEW_TRAINERS + PE_ATTENTION_TRAINERS + SLAB_ABLATIONS
HAND_WRITTEN_BY_NAME = {cls.__name__: cls for cls in HAND_WRITTEN}

# Ψ-Net brings its own (class-balanced) cross-entropy: no border-loss variant
_BORDER_SLAB = tuple(cls.__name__ for cls in SLAB_TRAINERS if cls is not nnUNetTrainer25DPsiNet)
# Wang et al.'s loss has no cross-entropy to re-weight: no border-loss variant either
_BORDER_OTHERS = tuple(cls.__name__ for cls in ANISO_TRAINERS + MORPH_MLP_VARIANTS + VIEW_TRAINERS
                       + PE_ATTENTION_TRAINERS if cls is not nnUNetTrainer25DAniso_PaperLoss)
_SLAB_SIZED = tuple(cls.__name__ for cls in SLAB_TRAINERS) + tuple(name + BORDER_LOSS_SUFFIX for name in _BORDER_SLAB)


def _unscheduled_names() -> tuple[str, ...]:
    """Every declared name without a schedule or seed: the hand-written trainers and their border-loss and
    slab-size variants."""
    border = tuple(name + BORDER_LOSS_SUFFIX for name in _BORDER_SLAB + _BORDER_OTHERS)
    sized = tuple(name + slab_suffix(n) for name in _SLAB_SIZED for n in SLAB_SIZES)
    sized += tuple(cls.__name__ + slab_suffix(n) for cls in VIEW_TRAINERS for n in VIEW_SLAB_SIZES)
    return tuple(HAND_WRITTEN_BY_NAME) + sized + border


def _declared_names() -> tuple[str, ...]:
    plugin = _unscheduled_names()
    scheduled = tuple(schedule_name(name, epochs) for name in plugin for epochs in EPOCHS)
    cpu = tuple(schedule_name(name, epochs, iterations) for name in (nnUNetTrainer.__name__, *plugin)
                for epochs, iterations in CPU_SCHEDULES)
    return plugin + scheduled + cpu


UNSCHEDULED_NAMES = _unscheduled_names()
DECLARED_NAMES = frozenset(_declared_names())


def _made(name: str, make) -> type[nnUNetTrainer]:
    """The class ``name`` of this module, made (once) by ``make()``."""
    cls = globals().get(name)
    if cls is None:
        cls = make()
        globals()[name] = cls
    return cls


def _declared_class(name: str) -> type[nnUNetTrainer]:
    """The class of a name in :data:`DECLARED_NAMES` (or nnU-Net's own ``nnUNetTrainer``), built from its parts."""
    if name in HAND_WRITTEN_BY_NAME:
        return HAND_WRITTEN_BY_NAME[name]
    if name == nnUNetTrainer.__name__:
        return nnUNetTrainer
    parts = split_trainer_name(name)
    if parts.epochs is not None:
        base = _declared_class(schedule_name_base(name))
        return _made(name, lambda: with_schedule(base, parts.epochs, parts.iterations, module=__name__))
    if parts.slab_size is not None:
        base = _declared_class(parts.base)
        return _made(name, lambda: with_slab_size(base, parts.slab_size, module=__name__))
    base = _declared_class(name[:-len(BORDER_LOSS_SUFFIX)])
    return _made(name, lambda: with_border_loss(base, module=__name__))


def schedule_name_base(name: str) -> str:
    """The name without its schedule suffix."""
    parts = split_trainer_name(name)
    return parts.base + (slab_suffix(parts.slab_size) if parts.slab_size is not None else "")


def trainer_class(name: str) -> type[nnUNetTrainer] | None:
    """The class of a declared name or a seeded repeat of one (of nnU-Net's ``nnUNetTrainer`` too), made on first
    use; None for any other name."""
    if name in DECLARED_NAMES:
        return _declared_class(name)
    base, seed = split_seed(name)
    if seed == 0 or not (base in DECLARED_NAMES or base == nnUNetTrainer.__name__):
        return None
    base_class = _declared_class(base)
    return _made(name, lambda: with_seed(base_class, seed, module=__name__))


class TrainerCatalogue(Mapping):
    """The declared names (iteration, ``len``, ``in``) and their classes, each made only when it is looked up."""

    def __getitem__(self, name: str) -> type[nnUNetTrainer]:
        if name not in DECLARED_NAMES:
            raise KeyError(name)
        return _declared_class(name)

    def __contains__(self, name: object) -> bool:
        return name in DECLARED_NAMES

    def __iter__(self) -> Iterator[str]:
        return iter(_declared_names())

    def __len__(self) -> int:
        return len(DECLARED_NAMES)


TRAINERS = TrainerCatalogue()


def __getattr__(name: str) -> type[nnUNetTrainer]:
    """``from nnunet_25d.trainers.registry import nnUNetTrainer25D_5slices`` and unpickling a made class."""
    cls = None if name.startswith("_") else trainer_class(name)
    if cls is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return cls


def is_view_trainer(name: str) -> bool:
    base = split_trainer_name(name).base.removesuffix(BORDER_LOSS_SUFFIX)
    return base in {cls.__name__ for cls in VIEW_TRAINERS}


# what `nnunet25d benchmark` runs by default next to nnU-Net's 2d and 3d_fullres: (trainer, configuration)
BENCHMARK_VARIANTS = (
    ("nnUNetTrainer25D", "2d"),  # self-configured: slab size and data from the fingerprint
    ("nnUNetTrainer25DFusion", "2d"),
    ("nnUNetTrainer25DAniso", "3d_fullres"),
    ("nnUNetTrainer25DMorphMLP", "2d"),
    ("nnUNetTrainer25DCoronal", "3d_fullres"),
    ("nnUNetTrainer25DSagittal", "3d_fullres"),
)

# --- names that look like the plugin's but are not declared: say what is wrong instead of "Could not find" -------

PLUGIN_PREFIX = "nnUNetTrainer25D"
# the names a trainer name is built on: the hand-written trainers and their _BorderLoss variants
BASE_TRAINERS = tuple(HAND_WRITTEN_BY_NAME) + tuple(name + BORDER_LOSS_SUFFIX for name in _BORDER_SLAB + _BORDER_OTHERS)
NNUNET_BASE = nnUNetTrainer.__name__


def looks_like_plugin_trainer(name: str) -> bool:
    """``nnUNetTrainer25D…``, or an nnU-Net-style name with the plugin's slab or ``_Iiters`` suffix."""
    if name.startswith("_"):
        return False
    if name.lower().startswith(PLUGIN_PREFIX.lower()):
        return True
    parts = split_trainer_name(name)
    return parts.base.lower().startswith("nnunettrainer") and (parts.slab_size is not None
                                                               or parts.iterations is not None)


def declared_slab_sizes(base: str) -> tuple[int, ...]:
    """The slab sizes declared as ``_<n>slices`` variants of ``base``."""
    if base in {cls.__name__ for cls in VIEW_TRAINERS}:
        return VIEW_SLAB_SIZES
    return SLAB_SIZES


def _declared(values) -> str:
    return ", ".join(map(str, values))


def trainer_name_problems(name: str) -> list[str]:
    """What is wrong with ``name`` (empty if it is declared), one sentence per problem."""
    if name in TRAINERS:
        return []
    parts = split_trainer_name(name)
    base, problems = parts.base, []
    if base.startswith(f"{PLUGIN_PREFIX}MorphMLP_") and base not in BASE_TRAINERS:
        size = base[len(f"{PLUGIN_PREFIX}MorphMLP_"):]
        problems.append(f"MorphMLP size {size!r} is not declared (sizes: T = {PLUGIN_PREFIX}MorphMLP, "
                        f"S = {PLUGIN_PREFIX}MorphMLP_S, N = {PLUGIN_PREFIX}MorphMLP_N, N_SGD = "
                        f"{PLUGIN_PREFIX}MorphMLP_N_SGD)")
    elif base not in BASE_TRAINERS and base != NNUNET_BASE:
        problems.append(f"unknown base trainer {base!r} (the plugin's: {_declared(BASE_TRAINERS)}; CPU schedules "
                        f"also exist for nnU-Net's {NNUNET_BASE})")
    if parts.slab_size is not None:
        n = parts.slab_size
        if f"_{n}{parts.slab_word}" != slab_suffix(n):
            problems.append(f"write {slab_suffix(n)}, not _{n}{parts.slab_word}")
        try:
            check_slab_size(n)
            sizes = declared_slab_sizes(base)
            if n not in sizes:
                default = " (1: plain 2D in the view's plane; the default is 3)" if sizes == VIEW_SLAB_SIZES else ""
                problems.append(f"slab size {n} is not declared for {base} (declared: {_declared(sizes)}{default})")
        except SlabSizeError as error:
            problems.append(str(error))
        if base == NNUNET_BASE:
            problems.append(f"nnU-Net's own {NNUNET_BASE} takes no slab size; the 2.5D slab trainer is "
                            f"{PLUGIN_PREFIX}_{n}slices")
        elif base in BASE_TRAINERS and not issubclass(_declared_class(base), SLAB_TRAINERS):
            problems.append(f"{base} has no slab-size variants (they exist for "
                            f"{_declared(cls.__name__ for cls in SLAB_TRAINERS)})")
    if parts.epochs is not None:
        epochs, iterations = parts.epochs, parts.iterations
        word = "epoch" if epochs == 1 else "epochs"
        if parts.epoch_word != word:
            problems.append(f"write _{epochs}{word}, not _{epochs}{parts.epoch_word}")
        if iterations is not None:
            if parts.iter_word != "iters":
                problems.append(f"write _{iterations}iters, not _{iterations}{parts.iter_word}")
            if (epochs, iterations) not in CPU_SCHEDULES:
                problems.append(f"schedule {epochs} epochs x {iterations} iterations is not declared (declared "
                                f"_Eepochs_Iiters: {_declared(f'{e}x{i}' for e, i in CPU_SCHEDULES)})")
        elif epochs not in EPOCHS:
            problems.append(f"{epochs} epochs is not declared for the plugin's trainers (declared _Nepochs: "
                            f"{_declared(EPOCHS)}; CPU schedules: _Eepochs_Iiters)")
    if base in BASE_TRAINERS or base == NNUNET_BASE:
        if base == NNUNET_BASE and parts.iterations is None and parts.slab_size is None:
            pass  # nnU-Net's own _Nepochs names: not ours to judge
        elif not problems:
            problems.append("this combination of base, slab size and schedule is not declared")
    return problems or ["not declared"]


def closest_trainer_names(name: str, n: int = 3) -> list[str]:
    """The corrected spelling (if declared), then the most similar declared names."""
    parts = split_trainer_name(name)
    corrected = parts.base
    if parts.slab_size is not None:
        corrected += slab_suffix(parts.slab_size)
    if parts.epochs is not None:
        corrected = schedule_name(corrected, parts.epochs, parts.iterations)
    first = [corrected] if corrected in TRAINERS and corrected != name else []
    return list(dict.fromkeys(first + difflib.get_close_matches(name, TRAINERS, n=n, cutoff=0.5)))[:n]


def trainer_name_error(name: str) -> TrainerNameError | None:
    """The error for a name that looks like one of the plugin's trainers but is not declared, else None."""
    base, seed = split_seed(name)
    if seed and (base in TRAINERS or base == NNUNET_BASE):
        return None  # a seeded repeat, made on first use
    if name in TRAINERS or not looks_like_plugin_trainer(name):
        return None
    close = closest_trainer_names(name)
    hint = f" Closest declared names: {', '.join(close)}." if close else ""
    return TrainerNameError(f"trainer {name!r} is not declared by nnunet_25d: {'; '.join(trainer_name_problems(name))}."
                            f"{hint} (all trainers and the name grammar: nnunet25d trainers)")


def check_trainer_name(name: str) -> str:
    """``name`` if nnU-Net or the plugin may know it; raise :class:`TrainerNameError` for undeclared plugin names."""
    error = trainer_name_error(name)
    if error is not None:
        raise error
    return name


def defined_in_another_trainer_folder(name: str) -> bool:
    """Whether another folder of ``nnUNet_extTrainer`` mentions ``name`` in a ``.py`` file (then it may be that
    folder's trainer, and the plugin must not stop nnU-Net's lookup before it gets there)."""
    word = re.compile(rf"\b{re.escape(name)}\b")
    ours = os.path.realpath(TRAINER_FOLDER)
    for folder in os.environ.get("nnUNet_extTrainer", "").split(os.pathsep):
        if not folder.strip() or not os.path.isdir(folder) or os.path.realpath(folder) == ours:
            continue
        for root, _, files in os.walk(folder):
            for file in files:
                if file.endswith(".py"):
                    try:
                        text = Path(root, file).read_text(errors="ignore")
                    except OSError:
                        continue
                    if word.search(text):
                        return True
    return False
