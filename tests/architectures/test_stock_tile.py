"""What stock nnUNetv2_predict gets from a slab model's plans and network: a tile from the training volumes'
depth (nnU-Net's fingerprint), a warning past the tile's exact range, a refusal before a tile that cannot fit."""
from __future__ import annotations

import json
import warnings

import pytest
import torch

from nnunet_25d.architectures.blocks import stock_tile
from nnunet_25d.architectures.slab_network import SlabNetwork
from nnunet_25d.architectures.blocks.stock_tile import (
    StockInferenceWarning,
    StockTileMemoryError,
    check_tile_fits,
    past_exact_range,
    tile_logit_bytes,
)
from nnunet_25d.trainers.slab_trainer import nnUNetTrainer25D, training_setup

PLANS = {"dataset_name": "Dataset042_Toy", "plans_name": "nnUNetPlans", "original_median_shape_after_transp": [10, 32, 32],
         "transpose_forward": [0, 1, 2], "configurations": {"2d": {
             "spacing": [0.8, 0.8], "patch_size": [32, 32], "batch_size": 12, "data_identifier": "nnUNetPlans_2d",
             "architecture": {"network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
                              "arch_kwargs": {"kernel_sizes": [[3, 3]], "strides": [[1, 1]]},
                              "_kw_requires_import": []}}}}


def write_fingerprint(root, depths: list[int]) -> None:
    folder = root / PLANS["dataset_name"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dataset_fingerprint.json").write_text(json.dumps({
        "shapes_after_crop": [[d, 32, 32] for d in depths], "spacings": [[4.0, 0.8, 0.8]] * len(depths)}))


def test_training_setup_reads_the_fingerprint_and_a_deep_case_deepens_the_saved_tile(tmp_path, monkeypatch):
    monkeypatch.setenv("nnUNet_preprocessed", str(tmp_path))
    write_fingerprint(tmp_path, [10] * 5)
    setup = training_setup(PLANS, "2d", 0)
    assert setup.volume_depth == 10
    shallow = nnUNetTrainer25D.derive_plans(PLANS, "2d", setup)["configurations"]["2d"]["patch_size"]
    write_fingerprint(tmp_path, [10] * 5 + [60])
    setup = training_setup(PLANS, "2d", 0)
    assert setup.volume_depth == pytest.approx(10 + 0.75 * 50)  # the 95th percentile of six
    deep = nnUNetTrainer25D.derive_plans(PLANS, "2d", setup)["configurations"]["2d"]["patch_size"]
    assert shallow == [20, 32, 32] and deep == [95, 32, 32]
    monkeypatch.delenv("nnUNet_preprocessed")
    assert training_setup(PLANS, "2d", 0).volume_depth is None


def tiny_slab_network() -> SlabNetwork:
    return SlabNetwork(1, 3, 3, kernel_sizes=[[3, 3]] * 2, strides=[[1, 1], [2, 2]], n_stages=2,
                       features_per_stage=[4, 8], conv_op=torch.nn.Conv2d, n_conv_per_stage=[1, 1],
                       n_conv_per_stage_decoder=[1]).eval()


def test_past_exact_range_by_hand():
    has_data = torch.zeros(1, 20, dtype=torch.bool)
    has_data[0, 5:15] = True  # a 10-slice volume centred in a 20-slice tile: slices 5..14, the exact range
    assert not past_exact_range(has_data)
    has_data[0, 4] = True
    assert past_exact_range(has_data)
    has_data[0, 4], has_data[0, 15] = False, True
    assert past_exact_range(has_data)


def test_a_tile_that_cannot_fit_is_refused_before_it_runs(monkeypatch):
    assert tile_logit_bytes(14, (1801, 512, 512)) == 5 * 14 * 1801 * 512 * 512 * 4
    check_tile_fits(3, (8, 32, 32), torch.device("cpu"))
    with pytest.raises(StockTileMemoryError, match="nnunet25d predict"):
        check_tile_fits(14, (1801, 512, 512), torch.device("cpu"))
    network = tiny_slab_network()
    monkeypatch.setattr(stock_tile, "available_bytes", lambda device: tile_logit_bytes(3, (8, 16, 16)) - 1)
    with pytest.raises(StockTileMemoryError):
        network(torch.ones(1, 1, 8, 16, 16))
    network.interior_only = True  # what nnunet25d predict runs: no deep tile, no check
    assert network(torch.ones(1, 1, 8, 16, 16)).shape == (1, 3, 6, 16, 16)


def test_the_network_warns_once_past_its_exact_range():
    network = tiny_slab_network()
    tile = torch.zeros(1, 1, 20, 8, 8)
    tile[:, :, 5:15] = 1
    with warnings.catch_warnings():
        warnings.simplefilter("error", StockInferenceWarning)
        network(tile)
    with pytest.warns(StockInferenceWarning, match="deeper than 10 slices"):
        network(torch.ones(1, 1, 20, 8, 8))
    with warnings.catch_warnings():
        warnings.simplefilter("error", StockInferenceWarning)
        network(torch.ones(1, 1, 20, 8, 8))
