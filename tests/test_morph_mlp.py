import pytest
import torch
from dynamic_network_architectures.building_blocks.unet_decoder import UNetDecoder
from torch import nn

from nnunet_25d.architectures.morph_mlp_block import DropPath, MorphBlock
from nnunet_25d.architectures.morph_mlp_layers import (
    BranchReweighting,
    ChunkMixing,
    ChunkSizeError,
    MorphFCs,
    MorphFCt,
)
from nnunet_25d.architectures.morph_mlp_unet import MORPH_MLP_SIZES, MorphMLPSlabUNet, chunk_lengths_for

TINY_DIMS = (8, 16, 16, 32)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: a second thread only adds waiting when the cores are busy with other work."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_unet(slab_size: int, patch: tuple[int, int], deep_supervision: bool = False) -> MorphMLPSlabUNet:
    torch.manual_seed(0)
    net = MorphMLPSlabUNet(
        input_channels=1, num_classes=3, slab_size=slab_size, depths=(1, 1, 1, 1), dims=TINY_DIMS,
        chunk_lengths=chunk_lengths_for(patch, TINY_DIMS), conv_features=(4, 8), drop_path_rate=0.0,
        n_conv_per_stage_encoder=1, n_conv_per_stage_decoder=1, deep_supervision=deep_supervision,
    )
    net.apply(net.initialize)
    return net.eval()


def make_slice_mixing_nonzero(net: nn.Module) -> None:
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, MorphFCt):
                module.fc.weight.copy_(torch.randn(module.fc.weight.shape, generator=generator) * 0.3)


def changed_tokens(before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    """Boolean mask over all axes but the last (channels): where any channel moved."""
    return (after - before).abs().amax(-1) > 1e-6


# ---------------------------------------------------------------- layers


@pytest.mark.parametrize("axis", ["H", "W"])
@pytest.mark.parametrize("chunk", [2, 4])
def test_chunk_mixing_only_mixes_within_its_chunk(axis, chunk):
    torch.manual_seed(0)
    mixing = ChunkMixing(dim=8, chunk_length=chunk, axis=axis)
    x = torch.randn(2, 8, 12, 8)
    h0, w0 = 5, 6
    x2 = x.clone()
    x2[1, h0, w0] += torch.randn(8)
    with torch.no_grad():
        changed = changed_tokens(mixing(x), mixing(x2))
    expected = torch.zeros(2, 8, 12, dtype=torch.bool)
    if axis == "W":  # same row, same chunk of the row
        start = w0 // chunk * chunk
        expected[1, h0, start:start + chunk] = True
    else:  # same column, same chunk of the column
        start = h0 // chunk * chunk
        expected[1, start:start + chunk, w0] = True
    assert torch.equal(changed, expected)


def test_chunk_mixing_shares_one_linear_layer_across_groups_and_chunks():
    mixing = ChunkMixing(dim=6, chunk_length=3, axis="W")
    assert [p.shape for p in mixing.parameters()] == [(6, 6), (6,)]
    # identity weights and zero bias: each chunk/group vector maps to itself, so the layer is the identity
    with torch.no_grad():
        mixing.fc.weight.copy_(torch.eye(6))
        mixing.fc.bias.zero_()
    x = torch.randn(1, 3, 6, 6)
    assert torch.equal(mixing(x), x)


def test_chunk_mixing_rejects_sizes_it_cannot_split():
    with pytest.raises(ValueError, match="chunk length 3 .* 8"):
        ChunkMixing(dim=8, chunk_length=3, axis="H")
    mixing = ChunkMixing(dim=8, chunk_length=4, axis="W")
    with pytest.raises(ChunkSizeError, match=r"length 6 .* 4 tokens \(stage dim 8\).*divides 6"):
        mixing(torch.randn(1, 4, 6, 8))


def test_channel_branch_is_per_token_and_reweighting_is_a_convex_mix():
    torch.manual_seed(0)
    fcs = MorphFCs(dim=8, chunk_length=2)
    x = torch.randn(1, 4, 4, 8)
    x2 = x.clone()
    x2[0, 1, 2] += 1.0
    with torch.no_grad():
        changed = changed_tokens(fcs.mix_c(x), fcs.mix_c(x2))
    expected = torch.zeros(1, 4, 4, dtype=torch.bool)
    expected[0, 1, 2] = True
    assert torch.equal(changed, expected)

    reweight = BranchReweighting(dim=8)
    same = torch.randn(2, 4, 4, 8)
    with torch.no_grad():  # identical branches: weights summing to one per channel give the branch back
        torch.testing.assert_close(reweight([same, same, same]), same)


def test_slice_mixing_starts_at_zero_and_only_mixes_slices_of_one_pixel_and_group():
    torch.manual_seed(0)
    fct = MorphFCt(dim=8, slab_size=3, group_size=2)
    x = torch.randn(2, 3, 4, 5, 8)
    assert torch.equal(fct(x), torch.zeros_like(x))
    make_slice_mixing_nonzero(fct)

    x2 = x.clone()
    x2[1, 0, 2, 3, 4] += 1.0  # slice 0, pixel (2, 3), channel 4 (group 2 = channels 4, 5)
    with torch.no_grad():
        delta = (fct(x2) - fct(x)).abs() > 1e-6
    expected = torch.zeros_like(delta)
    expected[1, :, 2, 3, 4:6] = True  # every slice of that pixel, only that group's channels
    assert torch.equal(delta, expected)

    with pytest.raises(ValueError, match="group size 3"):
        MorphFCt(dim=8, slab_size=3, group_size=3)


def test_drop_path_drops_whole_samples_in_training_only():
    torch.manual_seed(0)
    drop = DropPath(0.5)
    x = torch.ones(200, 3, 4)
    y = drop(x)
    per_sample = y.reshape(200, -1)
    assert set(per_sample.unique().tolist()) == {0.0, 2.0}
    assert (per_sample == per_sample[:, :1]).all()  # a sample is kept or dropped as a whole
    assert 50 < (per_sample[:, 0] == 0).sum() < 150
    assert torch.equal(drop.eval()(x), x)


def test_block_with_zero_slice_mixing_treats_slices_independently():
    torch.manual_seed(0)
    block = MorphBlock(dim=8, slab_size=3, chunk_length=2, temporal_group_size=4).eval()
    x = torch.randn(1, 3, 4, 4, 8)
    x2 = x.clone()
    x2[0, 0] += torch.randn(4, 4, 8)
    with torch.no_grad():
        assert torch.equal(block(x)[0, 1:], block(x2)[0, 1:])
        make_slice_mixing_nonzero(block)
        assert not torch.allclose(block(x)[0, 1], block(x2)[0, 1])


# ---------------------------------------------------------------- chunk lengths


@pytest.mark.parametrize("patch, dims", [
    ((128, 128), MORPH_MLP_SIZES["T"]["dims"]), ((256, 256), MORPH_MLP_SIZES["T"]["dims"]),
    ((64, 96), TINY_DIMS), ((192, 160), MORPH_MLP_SIZES["S"]["dims"]), ((128, 128), MORPH_MLP_SIZES["N"]["dims"]),
])
def test_chunk_lengths_divide_everything_and_are_the_largest_within_the_fraction(patch, dims):
    fractions = (0.25, 1.0, 1.0, 1.0)
    lengths = chunk_lengths_for(patch, dims, fractions)
    for i, (length, dim, fraction) in enumerate(zip(lengths, dims, fractions)):
        sh, sw = patch[0] // (4 * 2 ** i), patch[1] // (4 * 2 ** i)
        assert sh % length == 0 and sw % length == 0 and dim % length == 0
        assert length <= max(fraction * min(sh, sw), 1)
        larger = [n for n in range(length + 1, int(fraction * min(sh, sw)) + 1)
                  if sh % n == 0 and sw % n == 0 and dim % n == 0]
        assert larger == []


def test_chunk_lengths_grow_from_local_to_global():
    assert chunk_lengths_for((128, 128), MORPH_MLP_SIZES["N"]["dims"]) == [8, 16, 8, 4]  # 1/4 row, then whole rows
    assert chunk_lengths_for((128, 128), MORPH_MLP_SIZES["T"]["dims"]) == [4, 8, 8, 4]  # 84, 168: divisibility
    for patch, dims in [((128, 128), MORPH_MLP_SIZES["N"]["dims"]), ((128, 128), MORPH_MLP_SIZES["T"]["dims"]),
                        ((64, 96), TINY_DIMS)]:
        lengths = chunk_lengths_for(patch, dims)
        coverage = [n / min(patch[0] // (4 * 2 ** i), patch[1] // (4 * 2 ** i)) for i, n in enumerate(lengths)]
        assert coverage == sorted(coverage) and coverage[0] <= 0.25


def test_unchunkable_patches_raise_with_the_sizes():
    with pytest.raises(ChunkSizeError, match="40x40.*32"):
        chunk_lengths_for((40, 40), TINY_DIMS)
    net = MorphMLPSlabUNet(1, 2, 3, (1, 1, 1, 1), TINY_DIMS, chunk_lengths=(4, 2, 2, 4), conv_features=(4, 8))
    with pytest.raises(ChunkSizeError, match=r"96x96 .* stage 3 .* 3x3 tokens of dim 32.*chunk length 4"):
        net(torch.randn(1, 1, 3, 96, 96))
    with pytest.raises(ValueError, match="48x64 is not divisible by 32"):
        net(torch.randn(1, 1, 3, 48, 64))


# ---------------------------------------------------------------- network


@pytest.mark.parametrize("slab_size", [3, 5])
@pytest.mark.parametrize("patch", [(32, 32), (64, 96), (96, 64)])
def test_unet_shapes_with_and_without_deep_supervision(slab_size, patch):
    net = tiny_unet(slab_size, patch)
    assert isinstance(net.decoder, UNetDecoder)
    x = torch.randn(2, 1, slab_size, *patch)
    with torch.no_grad():
        assert net(x).shape == (2, 3, *patch)
        net.decoder.deep_supervision = True
        outputs = net(x)
    assert [tuple(o.shape) for o in outputs] == [(2, 3, patch[0] // s, patch[1] // s) for s in (1, 2, 4, 8, 16)]
    skips = net.encoder(x)
    assert [tuple(s.shape) for s in skips] == [
        (2, c, patch[0] // s, patch[1] // s) for c, s in zip((4, 8) + TINY_DIMS, (1, 2, 4, 8, 16, 32))
    ]


def test_initialize_keeps_slice_mixing_at_zero():
    net = tiny_unet(3, (32, 32))
    slice_mixers = [m for m in net.modules() if isinstance(m, MorphFCt)]
    assert len(slice_mixers) == 4
    assert all(not m.fc.weight.any() and not m.fc.bias.any() for m in slice_mixers)
    mlp_weight = net.encoder.stages[2][0].mlp[0].weight
    assert 0.01 < mlp_weight.std() < 0.03  # the truncated normal init really ran


def test_non_centre_slices_reach_the_prediction_through_slice_mixing():
    net = tiny_unet(5, (32, 32))
    x = torch.randn(1, 1, 5, 32, 32)
    x2 = x.clone()
    x2[:, :, 0] += torch.randn(1, 1, 32, 32)  # first slice only
    with torch.no_grad():
        before, after = net.encoder(x), net.encoder(x2)
        # zero slice mixing: the MorphMLP skips see the centre slice only; the convolutional levels see the slab
        assert all(torch.equal(a, b) for a, b in zip(before[2:], after[2:]))
        assert not torch.allclose(before[0], after[0])

        make_slice_mixing_nonzero(net)
        before, after = net.encoder(x), net.encoder(x2)
        assert all(not torch.allclose(a, b) for a, b in zip(before[2:], after[2:]))
        # the change that arrives through the MorphMLP levels alone moves the prediction
        mixed = before[:2] + after[2:]
        assert not torch.allclose(net.decoder(before), net.decoder(mixed))
        assert not torch.allclose(net(x), net(x2))


def linear(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


def norm(c: int) -> int:
    return 2 * c


def morph_block_parameters(c: int, slab_size: int, group: int) -> int:
    slice_mixing = linear(slab_size * group, slab_size * group)
    spatial = 3 * linear(c, c) + linear(c, c // 4) + linear(c // 4, 3 * c) + linear(c, c)
    mlp = linear(c, 3 * c) + linear(3 * c, c)
    return 3 * norm(c) + slice_mixing + spatial + mlp


def test_t_size_morph_stages_parameter_count():
    sizes = MORPH_MLP_SIZES["T"]
    depths, dims, slab_size, groups = sizes["depths"], sizes["dims"], 3, (7, 21, 42, 49)
    with torch.device("meta"):
        net = MorphMLPSlabUNet(1, 3, slab_size, depths, dims, chunk_lengths_for((128, 128), dims),
                               conv_features=(32, 64))
    encoder = net.encoder
    assert [{block.fc_t.group_size for block in stage} for stage in encoder.stages] == [{g} for g in groups]
    counted = sum(p.numel() for p in encoder.parameters()) - sum(p.numel() for p in encoder.conv_stages.parameters())
    expected = 1 * dims[0] * 4 * 4 + dims[0] + norm(dims[0])  # per-slice patch embedding
    expected += sum(a * b * 2 * 2 + b + norm(b) for a, b in zip(dims[:-1], dims[1:]))  # downsampling
    expected += sum(depth * morph_block_parameters(c, slab_size, g) for depth, c, g in zip(depths, dims, groups))
    expected += sum(norm(c) for c in dims)  # skip norms
    assert counted == expected
    assert 20e6 < counted < 26e6


def test_zero_initialised_slice_mixing_still_learns():
    net = tiny_unet(3, (32, 32)).train()
    net(torch.randn(2, 1, 3, 32, 32)).square().mean().backward()
    assert all(m.fc.weight.grad.abs().sum() > 0 for m in net.modules() if isinstance(m, MorphFCt))
