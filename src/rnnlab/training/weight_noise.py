"""Weight noise (Graves 2011; Chung et al. 2014 used σ = 0.075 on music): ``weight_noise.sigma``.

At every training forward each weight matrix W (every trainable parameter of two or more dimensions:
W_x, W_h of every gate, the head, embeddings; not the biases b, as in Graves and Chung) is replaced by
W + ε, ε ~ N(0, σ²) drawn afresh per batch; the loss and its gradient are computed at the noisy weights,
and the clean weights are copied back right after the backward pass, so the optimizer (and gradient
clipping) updates the clean weights. Validation, test and checkpoints only ever see clean weights.

The noise comes from a generator of its own, seeded from ``seed`` and kept in checkpoints: dropout's
random stream is untouched, and a resumed run draws the noise an uninterrupted one would. σ = 0 runs the
same add-and-restore with zeros (a check: the weights stay bit-identical to a run without noise).
"""

from __future__ import annotations

import lightning as L
import torch


def noisy_parameters(module: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The weights noise applies to: trainable parameters with two or more dimensions (no biases)."""
    return [p for p in module.parameters() if p.requires_grad and p.dim() >= 2]


class WeightNoise(L.Callback):
    """Adds N(0, σ²) to the weights for each training forward and backward; removes it before the update."""

    def __init__(self, sigma: float, seed: int = 0) -> None:
        if not (isinstance(sigma, (int, float)) and not isinstance(sigma, bool) and sigma >= 0):
            raise ValueError(f"weight_noise.sigma must be a number ≥ 0 (Chung et al.: 0.075), got {sigma!r}")
        self.sigma, self.seed = float(sigma), seed
        self.generator: torch.Generator | None = None
        self._state: torch.Tensor | None = None  # the generator's state from a checkpoint, until it exists
        self._clean: list[tuple[torch.nn.Parameter, torch.Tensor]] = []

    def _generator(self, device: torch.device) -> torch.Generator:
        if self.generator is None:
            self.generator = torch.Generator(device=device).manual_seed(self.seed * 1_000_003 + 7)
            if self._state is not None:
                self.generator.set_state(self._state)
        return self.generator

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._restore()  # a batch whose backward never ran (skipped step) leaves no noise behind
        params = noisy_parameters(pl_module)
        if not params:
            return
        generator = self._generator(params[0].device)
        with torch.no_grad():
            for p in params:
                self._clean.append((p, p.detach().clone()))
                p.add_(torch.randn(p.shape, generator=generator, device=p.device, dtype=p.dtype), alpha=self.sigma)

    def _restore(self) -> None:
        with torch.no_grad():
            for p, clean in self._clean:
                p.copy_(clean)  # a copy, not a subtraction: (W + ε) − ε need not round back to W
        self._clean = []

    def on_after_backward(self, trainer, pl_module) -> None:
        self._restore()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._restore()

    def on_train_end(self, trainer, pl_module) -> None:
        self._restore()

    def state_dict(self) -> dict:
        return {"sigma": self.sigma, "generator": None if self.generator is None else self.generator.get_state()}

    def load_state_dict(self, state_dict: dict) -> None:
        self._state = state_dict.get("generator")
        if self.generator is not None and self._state is not None:
            self.generator.set_state(self._state)


def build_weight_noise(settings, seed: int) -> WeightNoise | None:
    """``weight_noise: {sigma}``: None (off) while sigma is null."""
    settings = dict(settings or {})
    if unknown := sorted(set(settings) - {"sigma"}):
        raise ValueError(f"weight_noise.{unknown[0]} is not a key; the key is sigma")
    sigma = settings.get("sigma")
    return None if sigma is None else WeightNoise(sigma, seed)
