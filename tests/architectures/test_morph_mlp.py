import math

import pytest
import torch
from dynamic_network_architectures.building_blocks.unet_decoder import UNetDecoder
from torch import nn

from nnunet_25d.architectures.blocks.morph_mlp_block import DropPath, MorphBlock
from nnunet_25d.architectures.blocks.morph_mlp_chunks import ChunkLayout, chunk_lengths_for, stage_grids
from nnunet_25d.architectures.blocks.morph_mlp_encoder import MorphMLPSlabEncoder
from nnunet_25d.architectures.blocks.morph_mlp_layers import (
    BranchReweighting,
    ChunkMixing,
    ChunkSizeError,
    MorphFCs,
    MorphFCt,
    default_temporal_group_size,
)
from nnunet_25d.architectures.morph_mlp_unet import MORPH_MLP_SIZES, MorphMLPSlabUNet

TINY_DIMS = (8, 16, 16, 32)
# in-plane patches of real nnU-Net 2d plans (CT/MRI), all multiples of the encoder's stride 32
PLANNED_PATCHES = [(512, 512), (448, 384), (320, 256), (256, 256), (192, 160), (160, 128), (96, 96)]


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


def randomise(module: nn.Module, seed: int = 0) -> None:
    """Every parameter random (biases and LayerNorm affines too), so that no term of an equation hides."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)


def changed_tokens(before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    """Boolean mask over all axes but the last (channels): where any channel moved."""
    return (after - before).abs().amax(-1) > 1e-6


# ---------------------------------------------------------------- references written from the paper


def chunk_mixing_by_hand(x: torch.Tensor, fc: nn.Linear, chunk_length: int, axis: str) -> torch.Tensor:
    """MorphFC_s's H or W branch, token by token. x: (B, H, W, C).

    The tokens are read line by line (W: rows, H: columns); a line is zero-padded to a multiple of L when L is
    shorter, and the sequence's end to a multiple of L. Each chunk of L tokens and each channel group (s = C/L
    channels of every token, rounded; the last group zero-padded) gives one vector: the group's channels of the
    chunk's tokens, token after token. Output = fc(vector), put back where its values came from.
    """
    batch, height, width, dim = x.shape
    lines, line_length = (width, height) if axis == "H" else (height, width)
    padded_line = math.ceil(line_length / chunk_length) * chunk_length if chunk_length <= line_length else line_length
    sequence = [((j, line) if axis == "H" else (line, j)) if j < line_length else None
                for line in range(lines) for j in range(padded_line)]
    sequence += [None] * (-len(sequence) % chunk_length)
    s = max(1, round(dim / chunk_length))
    groups = math.ceil(dim / s)
    out = torch.zeros_like(x)
    for b in range(batch):
        for start in range(0, len(sequence), chunk_length):
            chunk = sequence[start:start + chunk_length]
            for g in range(groups):
                channels = range(g * s, (g + 1) * s)
                vector = torch.stack([x[b, pos[0], pos[1], ch] if pos is not None and ch < dim else x.new_zeros(())
                                      for pos in chunk for ch in channels])
                mixed = fc.weight @ vector + fc.bias
                for t, pos in enumerate(chunk):
                    for k, ch in enumerate(channels):
                        if pos is not None and ch < dim:
                            out[b, pos[0], pos[1], ch] = mixed[t * s + k]
    return out


def slice_mixing_by_hand(x: torch.Tensor, fct: MorphFCt) -> torch.Tensor:
    """MorphFC_t, pixel by pixel: per channel group of D, the S*D values of all slices (slice after slice) through
    fc, then every token's channels through proj. x: (N, S, H, W, C)."""
    n, s, h, w, c = x.shape
    d = fct.group_size
    mixed = torch.zeros_like(x)
    for b in range(n):
        for i in range(h):
            for j in range(w):
                for g in range(c // d):
                    vector = torch.cat([x[b, z, i, j, g * d:(g + 1) * d] for z in range(s)])
                    out = fct.fc.weight @ vector + fct.fc.bias
                    for z in range(s):
                        mixed[b, z, i, j, g * d:(g + 1) * d] = out[z * d:(z + 1) * d]
    return mixed @ fct.proj.weight.T + fct.proj.bias


# ---------------------------------------------------------------- layers


@pytest.mark.parametrize("axis, grid, dim, chunk", [
    ("W", (4, 6), 6, 3),  # the reference's case: L divides the row and C (s = C / L = 2)
    ("H", (4, 6), 8, 2),  # along columns
    ("W", (4, 3), 6, 6),  # two whole rows per chunk, one channel per token
    ("H", (4, 6), 12, 8),  # two whole columns per chunk; C/L = 1.5 -> 2 channels per token, groups padded
    ("W", (3, 5), 6, 4),  # rows of 5 padded to 8
    ("W", (3, 3), 8, 9),  # global, more tokens than channels
    ("H", (3, 3), 4, 12),  # global with the sequence's end padded (9 -> 12 tokens)
])
def test_chunk_mixing_equals_the_papers_loop_over_chunks(axis, grid, dim, chunk):
    torch.manual_seed(0)
    mixing = ChunkMixing(dim=dim, chunk_length=chunk, axis=axis)
    randomise(mixing)
    s = max(1, round(dim / chunk))
    assert mixing.fc.in_features == chunk * s and mixing.groups == math.ceil(dim / s)
    x = torch.randn(2, *grid, dim)
    with torch.no_grad():
        torch.testing.assert_close(mixing(x), chunk_mixing_by_hand(x, mixing.fc, chunk, axis))
        # leading axes (slab tokens (N, S, H, W, C)) are independent samples of the same layer
        slabs = torch.randn(2, 3, *grid, dim)
        torch.testing.assert_close(mixing(slabs)[1, 2], mixing(slabs[1, 2][None])[0])


@pytest.mark.parametrize("axis", ["H", "W"])
@pytest.mark.parametrize("chunk", [2, 4, 24])
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
    if axis == "W" and chunk <= 12:  # same row, same chunk of the row
        start = w0 // chunk * chunk
        expected[1, h0, start:start + chunk] = True
    elif axis == "W":  # chunks of two whole rows
        expected[1, h0 // 2 * 2:h0 // 2 * 2 + 2, :] = True
    elif chunk <= 8:  # same column, same chunk of the column
        start = h0 // chunk * chunk
        expected[1, start:start + chunk, w0] = True
    else:  # chunks of three whole columns
        expected[1, :, w0 // 3 * 3:w0 // 3 * 3 + 3] = True
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


def test_bad_chunk_lengths_are_rejected():
    with pytest.raises(ValueError, match="chunk length must be positive"):
        ChunkMixing(dim=8, chunk_length=0, axis="H")
    with pytest.raises(ValueError, match="chunk length must be positive, got -2"):
        ChunkLayout.for_grid(-2, 4, 4)
    with pytest.raises(ValueError, match="axis must be 'H' or 'W'"):
        ChunkMixing(dim=8, chunk_length=2, axis="C")
    with pytest.raises(ValueError, match=r"one int or a pair \(H branch, W branch\)"):
        MorphFCs(dim=8, chunk_lengths=(2, 2, 2))


def test_branch_reweighting_equals_the_papers_formula_pooled_over_every_branch_and_slice():
    torch.manual_seed(0)
    reweight = BranchReweighting(dim=8)
    randomise(reweight)
    branches = [torch.randn(2, 3, 4, 5, 8) * (b + 1) + b for b in range(3)]  # (N, S, H, W, C), all different
    pooled = (branches[0] + branches[1] + branches[2]).mean(dim=(1, 2, 3))  # every slice and pixel of a sample
    first, last = reweight.mlp[0], reweight.mlp[-1]
    assert (first.in_features, first.out_features, last.out_features) == (8, 2, 24)  # C -> C/4 -> 3C
    hidden = torch.nn.functional.gelu(pooled @ first.weight.T + first.bias)
    weights = (hidden @ last.weight.T + last.bias).reshape(2, 3, 8).softmax(dim=1)
    expected = sum(weights[:, b, None, None, None, :] * branches[b] for b in range(3))
    with torch.no_grad():
        torch.testing.assert_close(reweight(branches), expected)
        same = torch.randn(2, 4, 4, 8)  # identical branches: weights summing to one per channel give it back
        torch.testing.assert_close(reweight([same, same, same]), same)
    with pytest.raises(ValueError, match="expected 3 branches, got 2"):
        reweight(branches[:2])
    assert BranchReweighting(dim=4).mlp[0].out_features == 1  # C/4, at least one
    assert MorphFCs(dim=8, chunk_lengths=2, reweight_reduction=2).reweight.mlp[0].out_features == 4


def test_spatial_layer_is_the_reweighted_sum_of_its_branches_then_a_projection():
    torch.manual_seed(0)
    fcs = MorphFCs(dim=8, chunk_lengths=(4, 2))
    randomise(fcs)
    assert (fcs.mix_h.chunk_length, fcs.mix_w.chunk_length) == (4, 2)
    x = torch.randn(2, 3, 4, 6, 8)
    with torch.no_grad():
        h, w = fcs.mix_h(x), fcs.mix_w(x)
        c = x @ fcs.mix_c.weight.T + fcs.mix_c.bias  # the channel branch: per token
        weights = fcs.reweight.mlp((h + w + c).mean(dim=(1, 2, 3))).reshape(2, 3, 8).softmax(dim=1)
        weights = weights[:, :, None, None, None]  # (N, branch, S, H, W, C)
        mixed = weights[:, 0] * h + weights[:, 1] * w + weights[:, 2] * c
        torch.testing.assert_close(fcs(x), mixed @ fcs.proj.weight.T + fcs.proj.bias)


def test_slice_mixing_equals_the_papers_loop_then_projection():
    torch.manual_seed(0)
    fct = MorphFCt(dim=8, slab_size=3, group_size=2)
    randomise(fct)
    x = torch.randn(2, 3, 2, 3, 8)
    with torch.no_grad():
        torch.testing.assert_close(fct(x), slice_mixing_by_hand(x, fct))


def test_slice_mixing_starts_at_zero_with_identity_projection_and_only_mixes_slices_of_one_pixel_and_group():
    torch.manual_seed(0)
    fct = MorphFCt(dim=8, slab_size=3, group_size=2)
    x = torch.randn(2, 3, 4, 5, 8)
    assert torch.equal(fct(x), torch.zeros_like(x))
    assert torch.equal(fct.proj.weight, torch.eye(8)) and not fct.proj.bias.any()
    make_slice_mixing_nonzero(fct)

    x2 = x.clone()
    x2[1, 0, 2, 3, 4] += 1.0  # slice 0, pixel (2, 3), channel 4 (group 2 = channels 4, 5)
    with torch.no_grad():
        delta = (fct(x2) - fct(x)).abs() > 1e-6
    expected = torch.zeros_like(delta)
    expected[1, :, 2, 3, 4:6] = True  # every slice of that pixel, only that group's channels (identity proj)
    assert torch.equal(delta, expected)

    with pytest.raises(ValueError, match="group size 3"):
        MorphFCt(dim=8, slab_size=3, group_size=3)
    with pytest.raises(ValueError, match="built for slabs of 3 slices, got 5"):
        fct(torch.randn(1, 5, 2, 2, 8))


@pytest.mark.parametrize("dim, group", [(8, 1), (12, 1), (16, 2), (24, 3), (84, 7), (588, 49)])
def test_default_slice_mixing_groups_are_at_least_eight(dim, group):
    assert default_temporal_group_size(dim) == group
    assert MorphBlock(dim=dim, slab_size=3, chunk_lengths=1).fc_t.group_size == group


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
    assert torch.equal(DropPath().train()(x), x)  # p = 0 by default
    with pytest.raises(ValueError, match=r"must be in \[0, 1\), got 1.0"):
        DropPath(1.0)


class Elementwise(nn.Module):
    def __init__(self, function):
        super().__init__()
        self.function = function

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.function(x)


def test_block_mlp_has_the_papers_ratio_three_and_gelu():
    block = MorphBlock(dim=8, slab_size=3, chunk_lengths=2)
    first, last = block.mlp[0], block.mlp[-1]
    assert (first.in_features, first.out_features, last.out_features) == (8, 24, 8)
    x = torch.randn(5, 8)
    with torch.no_grad():
        expected = torch.nn.functional.gelu(x @ first.weight.T + first.bias) @ last.weight.T + last.bias
        torch.testing.assert_close(block.mlp(x), expected)


def test_block_follows_the_papers_residual_equations():
    torch.manual_seed(0)
    block = MorphBlock(dim=8, slab_size=3, chunk_lengths=2, temporal_group_size=4).eval()
    randomise(block)  # the three LayerNorms differ
    slice_mixing, spatial, mlp = Elementwise(torch.sin), Elementwise(lambda v: 0.5 * v.square() - 1), \
        Elementwise(torch.tanh)
    drop_path = Elementwise(lambda v: 2 * v)  # stands for drop path: marks the branches it is applied to
    block.fc_t, block.fc_s, block.mlp, block.drop_path = slice_mixing, spatial, mlp, drop_path
    x_in = torch.randn(2, 3, 4, 4, 8)
    with torch.no_grad():
        x = x_in + slice_mixing(block.norm_t(x_in))  # no drop path on the slice mixing, as in the reference
        y = x_in + drop_path(spatial(block.norm_s(x)))  # the spatial residual starts again from the block input
        expected = y + drop_path(mlp(block.norm_mlp(y)))
        torch.testing.assert_close(block(x_in), expected)


def freeze_branch_weights(net: nn.Module) -> None:
    """Constant branch weights (no pooled input): every slice of a slab is then computed on its own."""
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, BranchReweighting):
                module.mlp[-1].weight.zero_()


def test_block_slices_meet_through_slice_mixing_and_the_pooled_branch_weights_only():
    torch.manual_seed(0)
    block = MorphBlock(dim=8, slab_size=3, chunk_lengths=2, temporal_group_size=4).eval()
    x = torch.randn(1, 3, 4, 4, 8)
    x2 = x.clone()
    x2[0, 0] += torch.randn(4, 4, 8)
    with torch.no_grad():
        assert not torch.equal(block(x)[0, 1:], block(x2)[0, 1:])  # the branch weights pool over every slice
        freeze_branch_weights(block)
        assert torch.equal(block(x)[0, 1:], block(x2)[0, 1:])  # zero slice mixing, constant branch weights
        make_slice_mixing_nonzero(block)
        assert not torch.allclose(block(x)[0, 1], block(x2)[0, 1])


# ---------------------------------------------------------------- chunk lengths


@pytest.mark.parametrize("size", ["N", "T", "S"])
@pytest.mark.parametrize("patch", PLANNED_PATCHES)
def test_chunk_lengths_at_planned_patches_grow_to_global_without_padding(patch, size):
    dims = MORPH_MLP_SIZES[size]["dims"]
    lengths = chunk_lengths_for(patch, dims)
    grids = stage_grids(patch, len(dims))
    assert len(lengths) == len(dims)
    for branch in (0, 1):  # H, W
        per_stage = [pair[branch] for pair in lengths]
        assert per_stage == sorted(per_stage), f"{patch}: L shrinks with depth: {lengths}"
    h, w = grids[-1]
    assert lengths[-1] == [h * w, h * w]  # the deepest stage mixes every token
    for (length_h, length_w), (h, w), dim in zip(lengths, grids, dims):
        for length, lines, line in ((length_h, w, h), (length_w, h, w)):
            layout = ChunkLayout.for_grid(length, lines, line)
            assert layout.padding == 0 and not layout.wraps
        for length in (length_h, length_w):  # chunk vectors of about C values, as the paper's C x C layer
            vector = ChunkMixing(dim, length, "W").fc.in_features
            assert abs(vector - dim) <= length / 2 or (length > dim and vector == length)


@pytest.mark.parametrize("patch, expected", [
    ((512, 512), [[32, 32], [64, 64], [64, 64], [256, 256]]),  # the paper's quarter line, line, two lines, all
    ((448, 384), [[28, 24], [56, 48], [56, 48], [168, 168]]),  # per branch: columns of 112, rows of 96 tokens
    ((192, 160), [[12, 10], [24, 20], [24, 20], [30, 30]]),
    ((96, 96), [[6, 6], [6, 6], [6, 6], [9, 9]]),  # the 3x3 deepest grid caps the earlier stages at 9 tokens
    ((64, 64), [[4, 4], [4, 4], [4, 4], [4, 4]]),
])
def test_chunk_lengths_follow_the_reference_schedule(patch, expected):
    for size in ("N", "T", "S"):
        assert chunk_lengths_for(patch, MORPH_MLP_SIZES[size]["dims"]) == expected


def test_chunk_lengths_with_other_line_fractions():
    # an eighth of a 128-token line, half a 64-token line, one 32-token line, then global
    assert chunk_lengths_for((512, 512), TINY_DIMS, (0.125, 0.5, 1.0)) == [[16, 16], [32, 32], [32, 32], [256, 256]]
    # a quarter line everywhere would shrink with depth (32, 16, 8 tokens): each stage is capped by the next one
    assert chunk_lengths_for((512, 512), TINY_DIMS, (0.25, 0.25, 0.25)) == [[8, 8], [8, 8], [8, 8], [256, 256]]
    with pytest.raises(ValueError, match="one line fraction per stage before the deepest"):
        chunk_lengths_for((512, 512), TINY_DIMS, (0.25, 1.0, 1.0, 1.0))


def test_only_patches_off_the_stride_have_no_layout():
    with pytest.raises(ChunkSizeError, match="40x40 is not a positive multiple of 32"):
        chunk_lengths_for((40, 40), TINY_DIMS)
    for empty in ((0, 64), (64, 0)):
        with pytest.raises(ChunkSizeError, match="is not a positive multiple of 32"):
            chunk_lengths_for(empty, TINY_DIMS)
    net = MorphMLPSlabUNet(1, 2, 3, (1, 1, 1, 1), TINY_DIMS, chunk_lengths=(4, 2, 2, 4), conv_features=(4, 8))
    with pytest.raises(ChunkSizeError, match="48x64 is not a positive multiple of 32"):
        net(torch.randn(1, 1, 3, 48, 64))
    with torch.no_grad():  # chunk lengths of another patch: padded and cropped, not refused
        assert net(torch.randn(1, 1, 3, 96, 96)).shape == (1, 2, 96, 96)


def test_plans_of_older_models_build_the_same_network_from_one_length_per_stage():
    old, new = [4, 8, 4, 2], [[4, 4], [8, 8], [4, 4], [2, 2]]
    nets = []
    for lengths in (old, new):
        torch.manual_seed(0)
        nets.append(MorphMLPSlabUNet(1, 3, 3, (1, 1, 1, 1), TINY_DIMS, lengths, conv_features=(4, 8)).eval())
    x = torch.randn(1, 1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(nets[0](x), nets[1](x))


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


def test_defaults_follow_the_paper_and_nnunet():
    with torch.device("meta"):
        net = MorphMLPSlabUNet(1, 3, 3, (1, 1, 2, 1), TINY_DIMS, chunk_lengths_for((64, 64), TINY_DIMS),
                               temporal_group_size=2, deep_supervision=True)
    encoder = net.encoder
    assert net.decoder.deep_supervision is True
    assert all(block.fc_t.group_size == 2 for stage in encoder.stages for block in stage)
    assert [block.mlp[0].out_features for stage in encoder.stages for block in stage] == [24, 48, 48, 48, 96]
    # stochastic depth grows linearly from 0 to 0.1 over the five blocks
    rates = [block.drop_path.p for stage in encoder.stages for block in stage]
    assert rates == pytest.approx([0, 0.025, 0.05, 0.075, 0.1])
    with torch.device("meta"):
        two_blocks = MorphMLPSlabEncoder(1, 3, (1, 1), (8, 16), (1, 1), temporal_group_size=(1, 4))
    assert [stage[0].drop_path.p for stage in two_blocks.stages] == pytest.approx([0, 0.1])
    assert [stage[0].fc_t.group_size for stage in two_blocks.stages] == [1, 4]
    # two 3x3 convolutions per convolutional level and per decoder stage, nnU-Net's norm and non-linearity
    assert [len(stage.convs) for stage in encoder.conv_stages] == [2, 2]
    assert all(len(stage.convs) == 2 for stage in net.decoder.stages)
    for conv_block in [*encoder.conv_stages[0].convs, *net.decoder.stages[0].convs]:
        assert conv_block.conv.bias is not None and conv_block.conv.kernel_size == (3, 3)
        assert isinstance(conv_block.norm, nn.InstanceNorm2d) and conv_block.norm.affine and conv_block.norm.eps == 1e-5
        assert isinstance(conv_block.nonlin, nn.LeakyReLU) and conv_block.nonlin.inplace
    assert encoder.strides == [[1, 1]] + [[2, 2]] * 5 and encoder.morph_strides == [4, 8, 16, 32]


def test_encoder_defaults_and_options():
    with torch.device("meta"):
        default = MorphMLPSlabEncoder(1, 3, (1,), (8,), (1,))
        custom = MorphMLPSlabEncoder(1, 3, (1,), (8,), (1,), n_conv_per_stage=1, mlp_ratio=2.0,
                                     norm_op_kwargs={"eps": 1e-3, "affine": False}, nonlin_kwargs={"inplace": False})
    assert len(default.conv_stages[0].convs) == 2 and default.stages[0][0].mlp[0].out_features == 24
    assert len(custom.conv_stages[0].convs) == 1 and custom.stages[0][0].mlp[0].out_features == 16
    norm, nonlin = custom.conv_stages[0].convs[0].norm, custom.conv_stages[0].convs[0].nonlin
    assert norm.eps == 1e-3 and not norm.affine and not nonlin.inplace


def test_encoder_rejects_inconsistent_stages_and_inputs():
    mismatch = r"depths \(1, 1\), dims \(8,\) and chunk_lengths \(1, 1\) need one entry per MorphMLP stage"
    with pytest.raises(ValueError, match=mismatch):
        MorphMLPSlabEncoder(1, 3, (1, 1), (8,), (1, 1))
    with pytest.raises(ValueError, match=r"conv_features needs two entries \(strides 1 and 2\), got \(4,\)"):
        MorphMLPSlabEncoder(1, 3, (1,), (8,), (1,), conv_features=(4,))
    encoder = MorphMLPSlabEncoder(1, 3, (1,), (8,), (1,), conv_features=(4, 8))
    for shape in ((1, 1, 5, 32, 32), (1, 2, 3, 32, 32), (1, 3, 32, 32)):
        with pytest.raises(ValueError, match=r"expected slabs \(N, 1, 3, H, W\), got shape"):
            encoder(torch.randn(shape))


def test_initialize_keeps_slice_mixing_at_its_start():
    net = tiny_unet(3, (32, 32))
    slice_mixers = [m for m in net.modules() if isinstance(m, MorphFCt)]
    assert len(slice_mixers) == 4
    assert all(not m.fc.weight.any() and not m.fc.bias.any() for m in slice_mixers)
    assert all(torch.equal(m.proj.weight, torch.eye(m.dim)) and not m.proj.bias.any() for m in slice_mixers)
    mlp_weight = net.encoder.stages[2][0].mlp[0].weight
    assert 0.01 < mlp_weight.std() < 0.03  # the truncated normal init really ran
    assert all(not m.bias.any() for m in net.modules() if isinstance(m, nn.Linear))
    conv = net.encoder.conv_stages[1].convs[0].conv  # 4 -> 8 channels, 3x3: He init with a = 0.01
    fan_in = conv.in_channels * 9
    assert conv.weight.std().item() == pytest.approx((2 / (1 + 1e-4) / fan_in) ** 0.5, rel=0.12)
    assert not conv.bias.any()


def test_non_centre_slices_reach_the_prediction_through_slice_mixing():
    net = tiny_unet(5, (32, 32))
    freeze_branch_weights(net)
    x = torch.randn(1, 1, 5, 32, 32)
    x2 = x.clone()
    x2[:, :, 0] += torch.randn(1, 1, 32, 32)  # first slice only
    with torch.no_grad():
        before, after = net.encoder(x), net.encoder(x2)
        # zero slice mixing, constant branch weights: the MorphMLP skips see the centre slice only; the
        # convolutional levels see the slab
        assert all(torch.equal(a, b) for a, b in zip(before[2:], after[2:]))
        assert not torch.allclose(before[0], after[0])

        x3 = x.clone()
        x3[:, :, 2] += 1.0  # the centre slice: its tokens are the skips
        assert all(not torch.allclose(a, b) for a, b in zip(before[2:], net.encoder(x3)[2:]))

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


def morph_block_parameters(c: int, slab_size: int, group: int, chunk_lengths: list[int]) -> int:
    slice_mixing = linear(slab_size * group, slab_size * group) + linear(c, c)  # per-group mixing, projection
    chunk_vectors = [length * max(1, round(c / length)) for length in chunk_lengths]
    spatial = sum(linear(v, v) for v in chunk_vectors) + linear(c, c) + linear(c, c // 4) + linear(c // 4, 3 * c)
    spatial += linear(c, c)
    mlp = linear(c, 3 * c) + linear(3 * c, c)
    return 3 * norm(c) + slice_mixing + spatial + mlp


def test_t_size_morph_stages_parameter_count():
    sizes = MORPH_MLP_SIZES["T"]
    depths, dims, slab_size, groups = sizes["depths"], sizes["dims"], 3, (7, 21, 42, 49)
    chunk_lengths = chunk_lengths_for((448, 384), dims)
    with torch.device("meta"):
        net = MorphMLPSlabUNet(1, 3, slab_size, depths, dims, chunk_lengths, conv_features=(32, 64))
    encoder = net.encoder
    assert [{block.fc_t.group_size for block in stage} for stage in encoder.stages] == [{g} for g in groups]
    counted = sum(p.numel() for p in encoder.parameters()) - sum(p.numel() for p in encoder.conv_stages.parameters())
    expected = 1 * dims[0] * 4 * 4 + dims[0] + norm(dims[0])  # per-slice patch embedding
    expected += sum(a * b * 2 * 2 + b + norm(b) for a, b in zip(dims[:-1], dims[1:]))  # downsampling
    expected += sum(depth * morph_block_parameters(c, slab_size, g, lengths)
                    for depth, c, g, lengths in zip(depths, dims, groups, chunk_lengths))
    expected += sum(norm(c) for c in dims)  # skip norms
    assert counted == expected
    assert 20e6 < counted < 30e6


def test_zero_initialised_slice_mixing_still_learns():
    net = tiny_unet(3, (32, 32)).train()
    net(torch.randn(2, 1, 3, 32, 32)).square().mean().backward()
    assert all(m.fc.weight.grad.abs().sum() > 0 for m in net.modules() if isinstance(m, MorphFCt))


# --- the reference's patch embedding and last stage (MTLab/MorphMLP, slowfast/models/morphmlp.py) ---------------

def reference_encoder(dims=(8, 16, 24, 32), depths=(1, 1, 1, 1), patch=(64, 64), **kwargs) -> MorphMLPSlabEncoder:
    return MorphMLPSlabEncoder(1, 3, depths, dims, chunk_lengths_for(patch, dims), conv_features=(4, 8),
                               patch_embedding="reference", last_stage="reference", **kwargs)


def test_reference_patch_embedding_is_two_overlapping_stride_two_convolutions_with_batchnorm_and_gelu():
    from nnunet_25d.architectures.blocks.morph_mlp_encoder import OverlappingPatchEmbedding

    embed = reference_encoder().patch_embed
    assert isinstance(embed, OverlappingPatchEmbedding)
    assert [type(m) for m in embed.children()] == [nn.Conv3d, nn.BatchNorm3d, nn.GELU, nn.Conv3d, nn.BatchNorm3d]
    assert (embed.proj1.kernel_size, embed.proj1.stride, embed.proj1.padding) == ((3, 3, 3), (1, 2, 2), (1, 1, 1))
    assert (embed.proj2.kernel_size, embed.proj2.stride, embed.proj2.padding) == ((1, 3, 3), (1, 2, 2), (0, 1, 1))
    assert (embed.proj1.out_channels, embed.proj2.out_channels) == (4, 8)
    with pytest.raises(ValueError, match="halves its 7 channels first: use an even dim"):
        OverlappingPatchEmbedding(1, 7)
    c_in, half, c = 1, 4, 8
    by_hand = c_in * half * 27 + half + 2 * half + half * c * 9 + c + 2 * c
    assert sum(p.numel() for p in embed.parameters()) == by_hand
    tokens = embed.eval()(torch.randn(2, 1, 3, 32, 40))
    assert tokens.shape == (2, 3, 8, 10, 8), "(N, S, H/4, W/4, C): the slices keep stride 1"


def test_reference_patches_overlap_and_slices_meet_in_the_embedding():
    """An impulse at one pixel of one slice reaches more than one token (3x3 stride-2 windows overlap; a 4x4
    stride-4 patch reaches one) and the neighbouring slices' tokens (3 taps along the slices)."""
    torch.manual_seed(0)
    for encoder, tokens_reached, slices_reached in ((reference_encoder(), 4, 2), (tiny_encoder_linear(), 1, 1)):
        embed = encoder.patch_embed.eval()
        x = torch.zeros(1, 1, 3, 32, 32)
        y = x.clone()
        y[0, 0, 0, 9, 9] = 1.0  # slice 0, a pixel where two 3x3 stride-2 windows overlap on both axes
        with torch.no_grad():
            if encoder.patch_embedding == "reference":
                a, b = embed(x), embed(y)
            else:
                a, b = embed(x.permute(0, 2, 3, 4, 1)), embed(y.permute(0, 2, 3, 4, 1))
        changed = (a - b).abs().sum(-1) > 1e-6  # (N, S, h, w)
        assert int(changed[0].any(0).sum()) == tokens_reached
        assert int(changed[0].any(-1).any(-1).sum()) == slices_reached


def tiny_encoder_linear() -> MorphMLPSlabEncoder:
    dims = (8, 16, 24, 32)
    return MorphMLPSlabEncoder(1, 3, (1, 1, 1, 1), dims, chunk_lengths_for((64, 64), dims), conv_features=(4, 8))


def test_reference_downsampling_is_an_overlapping_3x3_stride_2_convolution_per_slice_with_layernorm():
    from nnunet_25d.architectures.blocks.morph_mlp_encoder import OverlappingSliceDownsample

    for down, (a, b) in zip(reference_encoder().downsamples, [(8, 16), (16, 24), (24, 32)]):
        assert isinstance(down, OverlappingSliceDownsample)
        assert (down.conv.kernel_size, down.conv.stride, down.conv.padding) == ((3, 3), (2, 2), (1, 1))
        assert (down.conv.in_channels, down.conv.out_channels, down.norm.normalized_shape) == (a, b, (b,))
    assert reference_encoder().downsamples[0](torch.randn(2, 3, 8, 10, 8)).shape == (2, 3, 4, 5, 16)


def test_reference_last_stage_has_one_global_branch_and_the_channel_branch():
    encoder = reference_encoder()
    last = [block.fc_s for block in encoder.stages[-1]]
    earlier = [block.fc_s for stage in encoder.stages[:-1] for block in stage]
    assert all(fc.global_only and not hasattr(fc, "mix_h") and fc.reweight.n_branches == 2 for fc in last)
    assert all(not fc.global_only and fc.reweight.n_branches == 3 for fc in earlier)
    grid = stage_grids((64, 64), 4)[-1]
    assert last[0].mix_w.chunk_length == grid[0] * grid[1], "one chunk of every token: global"
    c, tokens = 32, grid[0] * grid[1]
    s = max(1, round(c / tokens))
    by_hand = linear(tokens * s, tokens * s) + linear(c, c) + linear(c, c // 4) + linear(c // 4, 2 * c) + linear(c, c)
    assert sum(p.numel() for p in last[0].parameters()) == by_hand


def test_reference_last_stage_mixes_every_token_of_a_slice_and_no_other_slice():
    torch.manual_seed(0)
    fc = reference_encoder().stages[-1][0].fc_s.eval()
    randomise(fc)
    freeze_branch_weights(fc)  # the branch weights pool over every slice: constant here
    x = torch.randn(1, 3, 2, 2, 32)
    x2 = x.clone()
    x2[0, 1, 0, 0] += 1.0
    with torch.no_grad():
        changed = changed_tokens(fc(x), fc(x2))
    assert changed.shape == (1, 3, 2, 2) and changed[0, 1].all() and not changed[0, 0].any()


def test_reference_choices_are_checked_and_default_to_the_earlier_network():
    with pytest.raises(ValueError, match="patch_embedding is one of"):
        reference_encoder(dims=(8, 16, 24, 32)).__class__(1, 3, (1,), (8,), [[1, 1]], patch_embedding="conv")
    plain = tiny_encoder_linear()
    assert (plain.patch_embedding, plain.last_stage) == ("linear", "chunks")
    reference = reference_encoder()
    assert set(plain.state_dict()) != set(reference.state_dict())


@pytest.mark.parametrize("slab_size", [3, 5])
def test_reference_unet_shapes_and_gradients(slab_size):
    sizes = MORPH_MLP_SIZES["N"]
    net = MorphMLPSlabUNet(1, 3, slab_size, sizes["depths"], sizes["dims"], chunk_lengths_for((64, 64), sizes["dims"]),
                           patch_embedding="reference", last_stage="reference", deep_supervision=True)
    net.apply(net.initialize)
    outputs = net.train()(torch.randn(2, 1, slab_size, 64, 64))
    assert [tuple(o.shape) for o in outputs] == [(2, 3, 64 // 2 ** i, 64 // 2 ** i) for i in range(5)]
    sum(o.square().mean() for o in outputs).backward()
    silent = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    # the slice mixing starts at zero: what only reaches the output through it waits for its first step
    assert [n for n in silent if ".norm_t." not in n and ".fc_t.proj.weight" not in n] == []
