"""PsiNet: the ICH network of Kuang et al. (CMPB 2020) on nnU-Net's planned 2D U-Net — a self-attention block at the
bottleneck, a contextual-attention gate on every skip, and a slice classifier as the third arm of the Ψ."""
from __future__ import annotations

import torch
from dynamic_network_architectures.architectures.unet import PlainConvUNet
from torch import nn

from nnunet_25d.architectures.blocks.contextual_attention import ContextualAttentionGate
from nnunet_25d.architectures.blocks.position_attention import PositionSelfAttention
from nnunet_25d.architectures.blocks.slice_output import SliceOutput


class SliceClassifier(nn.Module):
    """(N, C, H, W) bottleneck features -> (N, outputs) logits: global average pooling, then a linear layer."""

    def __init__(self, channels: int, outputs: int):
        super().__init__()
        self.linear = nn.Linear(channels, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.mean(dim=(2, 3)))


class PsiNet(PlainConvUNet):
    """PlainConvUNet (2D; every argument as in dynamic-network-architectures, by keyword as nnU-Net passes them)
    with three additions:

    - a :class:`PositionSelfAttention` on the bottleneck's features (``self_attention_reduction``);
    - in every decoder stage a :class:`ContextualAttentionGate` (``gate_reduction``) on the skip, driven by the
      upsampled decoder features, before the concatenation;
    - a :class:`SliceClassifier` on the attended bottleneck: one logit per entry of ``slice_outputs`` (default
      ``num_classes - 1``: each foreground label) for "this slice contains it".

    ``return_slice_logits``: in training mode return :class:`SliceOutput` so that a loss can supervise the slice
    task; in eval mode (validation, nnU-Net's predictor) the output is nnU-Net's.
    """

    def __init__(self, *, self_attention_reduction: int = 8, gate_reduction: int = 2,
                 slice_outputs: int | None = None, return_slice_logits: bool = False, **kwargs):
        super().__init__(**kwargs)
        if self.encoder.conv_op is not nn.Conv2d:
            raise ValueError(f"PsiNet is a 2D network (conv_op torch.nn.Conv2d), the plans give "
                             f"{self.encoder.conv_op}: derive it from a 2d configuration")
        channels = self.encoder.output_channels
        self.return_slice_logits = return_slice_logits
        self.self_attention = PositionSelfAttention(channels[-1], self_attention_reduction)
        # decoder stage s joins the skip of encoder stage n-2-s; its transposed convolution outputs that many channels
        self.gates = nn.ModuleList(ContextualAttentionGate(channels[-(s + 2)], channels[-(s + 2)], gate_reduction)
                                   for s in range(len(self.decoder.stages)))
        n_outputs = kwargs["num_classes"] - 1 if slice_outputs is None else slice_outputs
        self.slice_classifier = SliceClassifier(channels[-1], max(1, n_outputs))

    def forward(self, x: torch.Tensor):
        skips = self.encoder(x)
        bottleneck = self.self_attention(skips[-1])
        features, outputs = bottleneck, []
        decoder, last = self.decoder, len(self.decoder.stages) - 1
        for s, stage in enumerate(decoder.stages):
            context = decoder.transpconvs[s](features)
            gated, _ = self.gates[s](skips[-(s + 2)], context)
            features = stage(torch.cat((context, gated), 1))
            if decoder.deep_supervision or s == last:
                outputs.append(decoder.seg_layers[s](features))
        outputs.reverse()
        segmentation = outputs if decoder.deep_supervision else outputs[0]
        if self.training and self.return_slice_logits:
            return SliceOutput(segmentation, self.slice_classifier(bottleneck))
        return segmentation
