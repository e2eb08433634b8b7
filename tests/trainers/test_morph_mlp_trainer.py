"""nnUNetTrainer25DMorphMLP: the nnU-Net-facing network, the derived configuration, the optimiser, the CLI flow."""
import copy
import json

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from nnunet_25d.architectures.blocks.morph_mlp_chunks import chunk_lengths_for
from nnunet_25d.architectures.blocks.morph_mlp_layers import MorphFCt
from nnunet_25d.architectures.morph_mlp_slab_network import MORPH_MLP_STRIDES, MorphMLPSlabNetwork
from nnunet_25d.architectures.morph_mlp_unet import MORPH_MLP_SIZES
from nnunet_25d.planning.configuration import ConfigurationError
from nnunet_25d.trainers.morph_mlp_trainer import derive_morph_mlp_plans, nnUNetTrainer25DMorphMLP_N
from nnunet_25d.trainers.optimisation import WarmupCosineLR, adamw_without_decay_on_norms_and_biases

TRAINER = "nnUNetTrainer25DMorphMLP_N_2epochs_5iters"


def small_morph_mlp_network(slab_size: int = 3, deep_supervision: bool = False) -> MorphMLPSlabNetwork:
    """Tiny dims; slice mixing given random weights (it starts at zero) so the MorphMLP path sees the slab too."""
    torch.manual_seed(0)
    net = MorphMLPSlabNetwork(1, 3, slab_size, deep_supervision=deep_supervision, depths=(1, 1, 1, 1),
                              dims=(8, 16, 16, 32), chunk_lengths=((2, 2), (2, 2), (2, 4), (2, 2)),
                              conv_features=(4, 8))
    for module in net.modules():
        if isinstance(module, MorphFCt):
            torch.nn.init.normal_(module.fc.weight, std=0.2)
    return net.eval()


def test_network_keeps_every_slice_with_nnunet_deep_supervision_scales():
    outputs = small_morph_mlp_network(deep_supervision=True)(torch.randn(2, 1, 4, 64, 32))
    expected = [(2, 3, 4, 64 // 2 ** i, 32 // 2 ** i) for i in range(5)]
    assert [tuple(o.shape) for o in outputs] == expected  # nnU-Net: one output per stride in the plans but the last


def test_network_without_deep_supervision_by_default():
    net = MorphMLPSlabNetwork(1, 3, 3, depths=(1, 1, 1, 1), dims=(8, 16, 16, 32), chunk_lengths=(1, 1, 1, 1),
                              conv_features=(4, 8))
    assert net.decoder.deep_supervision is False


def test_network_rejects_strides_that_are_not_its_own():
    with pytest.raises(ValueError, match="strides"):
        MorphMLPSlabNetwork(1, 2, 3, strides=[[1, 1, 1], [1, 2, 2]], depths=(1,), dims=(8,), chunk_lengths=(1,))


def test_derived_configuration(nnunet, tiny_dataset):
    plans = nnunet.plans(tiny_dataset)
    source = plans["configurations"]["2d"]
    derived = derive_morph_mlp_plans(plans, "2d", 3, "N")["configurations"]["2d"]
    depth, *patch = derived["patch_size"]
    assert all(n % 32 == 0 and n >= m for n, m in zip(patch, source["patch_size"]))
    kwargs = derived["architecture"]["arch_kwargs"]
    assert kwargs["strides"] == MORPH_MLP_STRIDES and kwargs["dims"] == list(MORPH_MLP_SIZES["N"]["dims"])
    assert kwargs["chunk_lengths"] == chunk_lengths_for(patch, kwargs["dims"])
    deepest = [n // 32 for n in patch]
    assert kwargs["chunk_lengths"][-1] == [deepest[0] * deepest[1]] * 2  # global
    assert derived["data_identifier"] == source["data_identifier"]
    assert derive_morph_mlp_plans(derive_morph_mlp_plans(plans, "2d", 3, "N"), "2d", 3, "N") == \
        derive_morph_mlp_plans(plans, "2d", 3, "N")
    with pytest.raises(ConfigurationError, match="choose one of"):
        derive_morph_mlp_plans(plans, "2d", 3, "XL")


@pytest.mark.parametrize("planned, size, patch, lengths", [
    ([448, 384], "T", [448, 384], [[28, 24], [56, 48], [56, 48], [168, 168]]),
    ([192, 160], "N", [192, 160], [[12, 10], [24, 20], [24, 20], [30, 30]]),
    # rounded up to the stride 32; the 4x3 deepest grid (12 tokens) caps the H branch at 8 (one 8-token column)
    ([100, 90], "S", [128, 96], [[8, 6], [8, 12], [8, 12], [12, 12]]),
])
def test_derived_chunk_lengths_at_realistic_patches(nnunet, tiny_dataset, planned, size, patch, lengths):
    plans = copy.deepcopy(nnunet.plans(tiny_dataset))
    plans["configurations"]["2d"]["patch_size"] = planned
    derived = derive_morph_mlp_plans(plans, "2d", 3, size)["configurations"]["2d"]
    assert derived["patch_size"][1:] == patch
    assert derived["architecture"]["arch_kwargs"]["chunk_lengths"] == lengths


def test_plans_saved_by_older_models_still_build(nnunet, tiny_dataset):
    """Older plans store one chunk length per stage (both branches); they build the network they were trained with
    (its checkpoint does not load: the slice mixing now has a projection)."""
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    plans = derive_morph_mlp_plans(nnunet.plans(tiny_dataset), "2d", 3, "N")
    outputs = []
    for lengths in ([2, 4, 2, 1], [[2, 2], [4, 4], [2, 2], [1, 1]]):
        plans["configurations"]["2d"]["architecture"]["arch_kwargs"]["chunk_lengths"] = lengths
        manager = PlansManager(plans)
        torch.manual_seed(0)
        network = nnUNetTrainer25DMorphMLP_N.build_network_architecture(
            manager, manager.get_configuration("2d"), 1, 3, False).eval()
        with torch.no_grad():
            outputs.append(network(torch.randn(1, 1, 4, 32, 32, generator=torch.Generator().manual_seed(1))))
    assert torch.equal(outputs[0], outputs[1])


def test_warmup_then_cosine_decay():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = WarmupCosineLR(optimizer, 1e-3, max_steps=20, warmup_steps=2)
    lrs = []
    for epoch in range(20):
        schedule.step(epoch)
        lrs.append(optimizer.param_groups[0]["lr"])
    assert lrs[0] < lrs[1] < lrs[2] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(lrs[2:], lrs[3:])) and lrs[-1] < 1e-4


def test_adamw_decays_weights_but_not_norms_or_biases():
    net = small_morph_mlp_network()
    groups = adamw_without_decay_on_norms_and_biases(net, 1e-3, 0.05).param_groups
    decayed = {id(p) for p in groups[0]["params"]}
    layer_norm = next(m for m in net.modules() if isinstance(m, torch.nn.LayerNorm))
    assert id(layer_norm.weight) not in decayed and groups[0]["weight_decay"] == 0.05
    assert all(p.ndim >= 2 for p in groups[0]["params"]) and all(p.ndim < 2 for p in groups[1]["params"])


def test_cli_train_and_predict(nnunet, tiny_dataset, tmp_path):
    nnunet.run("nnUNetv2_train", "971", "2d", "0", "-tr", TRAINER, "-device", "cpu", "--npz", training=True)
    folder = nnunet.model_folder(tiny_dataset, TRAINER)
    plans = json.loads((folder / "plans.json").read_text())
    assert plans["configurations"]["2d"]["architecture"]["network_class_name"].endswith("MorphMLPSlabNetwork")
    log = next((folder / "fold_0").glob("training_log_*.txt")).read_text()
    assert "AdamW lr 0.001" in log
    images = nnunet.raw / tiny_dataset / "imagesTs"
    out = tmp_path / "pred"
    nnunet.run("nnUNetv2_predict", "-i", str(images), "-o", str(out), "-d", "971", "-c", "2d", "-tr", TRAINER,
               "-f", "0", "-device", "cpu", "--disable_progress_bar")
    for image in images.glob("*_0000.nii.gz"):
        prediction = sitk.ReadImage(str(out / image.name.replace("_0000", "")))
        assert prediction.GetSize() == sitk.ReadImage(str(image)).GetSize()
        assert set(np.unique(sitk.GetArrayFromImage(prediction))) <= {0, 1, 2}


def built(trainer, plans: dict):
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    manager = PlansManager(plans)
    torch.manual_seed(0)
    return trainer.build_network_architecture(manager, manager.get_configuration("2d"), 1, 3, False)


def test_the_trainer_stores_the_reference_embedding_and_last_stage_and_the_ablation_the_earlier_ones():
    from nnunet_25d.trainers.morph_mlp_trainer import nnUNetTrainer25DMorphMLP_N_LinearPatches
    from tests.architectures.test_deeplab import planned_plans

    for trainer, expected in ((nnUNetTrainer25DMorphMLP_N, ("reference", "reference")),
                              (nnUNetTrainer25DMorphMLP_N_LinearPatches, ("linear", "chunks"))):
        kwargs = trainer.derive_plans(planned_plans((64, 64)), "2d")["configurations"]["2d"]["architecture"][
            "arch_kwargs"]
        assert (kwargs["patch_embedding"], kwargs["last_stage"]) == expected
        encoder = built(trainer, trainer.derive_plans(planned_plans((64, 64)), "2d")).network_2d.encoder
        assert (encoder.patch_embedding, encoder.last_stage) == expected


def test_plans_of_earlier_models_build_their_network_and_the_trainer_refuses_their_checkpoint():
    """Plans written before the choice (no patch_embedding / last_stage) build the earlier network, so its model
    folder still predicts; its weights are refused, in one line naming the retrain, by the reference network the
    trainer now builds."""
    from nnunet_25d.architectures.checkpoints import EarlierArchitectureError, check_same_architecture
    from nnunet_25d.trainers.morph_mlp_trainer import nnUNetTrainer25DMorphMLP_N_LinearPatches
    from tests.architectures.test_deeplab import planned_plans

    plans = nnUNetTrainer25DMorphMLP_N.derive_plans(planned_plans((64, 64)), "2d")
    earlier = copy.deepcopy(plans)
    for key in ("patch_embedding", "last_stage"):
        del earlier["configurations"]["2d"]["architecture"]["arch_kwargs"][key]
    old = built(nnUNetTrainer25DMorphMLP_N, earlier)
    ablation = built(nnUNetTrainer25DMorphMLP_N_LinearPatches,
                     nnUNetTrainer25DMorphMLP_N_LinearPatches.derive_plans(planned_plans((64, 64)), "2d"))
    ablation.load_state_dict(old.state_dict())  # strict: the same tensors
    new = built(nnUNetTrainer25DMorphMLP_N, plans)
    with pytest.raises(EarlierArchitectureError, match=r"^this checkpoint holds an earlier version of "
                                                       r"nnUNetTrainer25DMorphMLP_N's network \(.*\): retrain"):
        check_same_architecture(old.state_dict(), new, "nnUNetTrainer25DMorphMLP_N's network", "retrain")
