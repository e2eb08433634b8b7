from types import SimpleNamespace

import pytest
import torch
from nnunetv2.training.dataloading.data_loader import nnUNetDataLoader

from nnunet_25d.architectures.blocks.slab_stack import SlabAsChannels, SliceNeighbourhood, unstack_slices
from nnunet_25d.geometry.slab import SlabBatch, SlabGeometry, SlabSizeError, check_slab_size, forced_foreground_patches


@pytest.mark.parametrize("bad", [0, -1, -3, 2, 4, 6, 3.0, True, "3"])
def test_invalid_slab_sizes_are_refused_with_the_fix(bad):
    with pytest.raises(SlabSizeError, match="odd|int"):
        check_slab_size(bad)


def test_slab_size_errors_say_what_is_wrong_and_the_fix():
    with pytest.raises(SlabSizeError, match=r"^slab size must be an int, got 3\.0$"):
        check_slab_size(3.0)
    with pytest.raises(SlabSizeError, match=r"^slab size 4 is invalid: it must be a positive odd number \(1, 3, 5, 7, "
                                            r"\.\.\.\) so that slice z sees .* \(trainers nnUNetTrainer25D_3slices, "
                                            r"_5slices, _7slices\)$"):
        check_slab_size(4)


@pytest.mark.parametrize("size", [1, 3, 5, 7])
def test_odd_slab_sizes_are_accepted(size):
    assert check_slab_size(size) == size


def test_neighbours_beyond_volume_ends_are_zero_slices():
    geometry = SlabGeometry(5)
    assert geometry.neighbours(0, 10) == [None, None, 0, 1, 2]
    assert geometry.neighbours(5, 10) == [3, 4, 5, 6, 7]
    assert geometry.neighbours(9, 10) == [7, 8, 9, None, None]
    assert geometry.neighbours(0, 1) == [None, None, 0, None, None]


@pytest.mark.parametrize("batch_size", range(1, 41))
def test_forced_foreground_patches_count_like_nnunets_loader(batch_size):
    """Reference: nnU-Net's own rule (nnUNetDataLoader, 33 % foreground oversampling) for each sample index."""
    loader = SimpleNamespace(batch_size=batch_size, oversample_foreground_percent=0.33)
    forced = sum(nnUNetDataLoader._oversample_last_XX_percent(loader, i) for i in range(batch_size))
    assert forced_foreground_patches(batch_size) == forced


def test_slab_batch_by_hand():
    batch = SlabBatch(patches=3, supervised_slices=4, slab_size=5)
    assert (batch.patch_depth, batch.slices_per_step, batch.forced_foreground_fraction) == (8, 12, 1 / 3)
    assert SlabBatch(patches=4, supervised_slices=2, slab_size=7).forced_foreground_fraction == 1 / 4


def _index_encoded(batch: int, channels: int, depth: int, size: int = 4) -> torch.Tensor:
    """Voxel value = 100*batch + 10*channel + slice index + 1 (never 0, the padding)."""
    z = torch.arange(1, depth + 1).view(1, 1, depth, 1, 1)
    c = torch.arange(channels).view(1, channels, 1, 1, 1) * 10
    b = torch.arange(batch).view(batch, 1, 1, 1, 1) * 100
    return (b + c + z).float().expand(batch, channels, depth, size, size).contiguous()


@pytest.mark.parametrize("slab_size", [1, 3, 5, 7])
def test_each_slice_gets_its_neighbours_in_order(slab_size):
    batch, channels, depth = 3, 2, 6  # batch != channels: rows are b * depth + z, never c * depth + z
    x = _index_encoded(batch, channels, depth)
    volumes = SliceNeighbourhood(slab_size)(x)
    assert volumes.shape == (batch * depth, channels, slab_size, 4, 4)
    slabs = SlabAsChannels(channels, slab_size)(volumes)
    assert slabs.shape == (batch * depth, slab_size * channels, 4, 4)
    geometry = SlabGeometry(slab_size)
    for b in range(batch):
        for z in range(depth):
            expected = [0 if n is None else 100 * b + 10 * c + n + 1
                        for n in geometry.neighbours(z, depth) for c in range(channels)]
            assert slabs[b * depth + z, :, 0, 0].tolist() == expected


@pytest.mark.parametrize("slab_size", [1, 3, 5, 7])
def test_interior_slabs_are_the_full_slabs_of_the_inner_slices(slab_size):
    x = _index_encoded(2, 2, 9)
    k = slab_size // 2
    neighbourhood = SliceNeighbourhood(slab_size)
    every = neighbourhood(x).reshape(2, 9, 2, slab_size, 4, 4)
    interior = neighbourhood.interior(x)
    assert torch.equal(interior, every[:, k:9 - k].reshape(-1, 2, slab_size, 4, 4))
    assert interior.ne(0).all(), "no zero slice inside the patch"


def test_slabs_with_data_mark_slices_whose_slab_is_not_all_zero():
    x = torch.zeros(2, 1, 9, 4, 4)
    x[0, 0, 4, 1, 2] = 0.5
    x[1, 0, 0] = -1
    assert SliceNeighbourhood(3).slabs_with_data(x).int().tolist() == [[0, 0, 0, 1, 1, 1, 0, 0, 0],
                                                                       [1, 1, 0, 0, 0, 0, 0, 0, 0]]


def test_unstack_inverts_slice_stacking():
    x = torch.randn(3, 4, 5, 6, 7)
    per_slice = x.permute(0, 2, 1, 3, 4).reshape(15, 4, 6, 7)
    assert torch.equal(unstack_slices(per_slice, 3), x)
