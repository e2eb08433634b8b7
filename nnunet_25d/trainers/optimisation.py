"""Optimiser and learning-rate schedule for MLP/transformer-style networks (nnU-Net's SGD 1e-2 is tuned for CNNs)."""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.optim.lr_scheduler import LRScheduler


class WarmupCosineLR(LRScheduler):
    """Linear warm-up from 0 over ``warmup_steps``, then cosine decay to 0 at ``max_steps``.

    Stepped like nnU-Net's ``PolyLRScheduler``: ``step(current_epoch)`` at the start of every epoch.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, initial_lr: float, max_steps: int, warmup_steps: int):
        self.initial_lr, self.max_steps, self.warmup_steps = initial_lr, max_steps, warmup_steps
        self.ctr = 0
        super().__init__(optimizer, -1)

    def lr_at(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.initial_lr * (step + 1) / (self.warmup_steps + 1)
        progress = (step - self.warmup_steps) / max(self.max_steps - self.warmup_steps, 1)
        return self.initial_lr * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    def step(self, current_step: int | None = None) -> None:
        if current_step is None or current_step == -1:
            current_step, self.ctr = self.ctr, self.ctr + 1
        lr = self.lr_at(current_step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]


def adamw_without_decay_on_norms_and_biases(network: nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW; weight decay only on weight matrices and kernels (not on biases, norm scales or shifts)."""
    decay, no_decay = [], []
    for parameter in network.parameters():
        if parameter.requires_grad:
            (decay if parameter.ndim >= 2 else no_decay).append(parameter)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr)


class AdamWWarmupCosine:
    """Put before a trainer class: AdamW (no decay on norms and biases), linear warm-up over ``warmup_fraction`` of
    the epochs (at least one), cosine decay to 0, stepped per epoch as nnU-Net steps its poly schedule;
    ``optimiser = "sgd"`` keeps nnU-Net's SGD + poly instead."""

    optimiser: str = "adamw"
    adamw_lr: float = 1e-3
    adamw_weight_decay: float = 0.05
    warmup_fraction: float = 0.05

    def configure_optimizers(self):
        if self.optimiser == "sgd":
            return super().configure_optimizers()
        self.initial_lr = self.adamw_lr
        optimizer = adamw_without_decay_on_norms_and_biases(self.network, self.adamw_lr, self.adamw_weight_decay)
        warmup = max(1, round(self.warmup_fraction * self.num_epochs)) if self.num_epochs > 1 else 0
        self.print_to_log_file(f"{type(self).__name__}: AdamW lr {self.adamw_lr}, weight decay "
                               f"{self.adamw_weight_decay}, {warmup} warm-up epochs, cosine decay")
        return optimizer, WarmupCosineLR(optimizer, self.adamw_lr, self.num_epochs, warmup)
