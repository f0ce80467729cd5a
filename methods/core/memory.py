"""Sample memory: the training set of an online target model, with per-sample weights (FRTM §3.4, LWL §3.3).

Each slot holds tensors (features, labels, ...) and a weight gamma. A new sample gets weight
gamma_i = gamma_{i-1} / (1 - eta) before the weights are normalised to sum to one; equivalently every
stored weight decays by (1 - eta) and the new sample gets eta. When the memory is full, the sample with
the smallest weight is replaced (empty slots weigh 0, so they fill first).

FRTM: eta = 0.1, K_max = 80, the first-frame samples are not protected.
LWL:  eta = 0.1 (the notes; the paper writes its decay as 0.9), K_max = 32, the first frame is never
      replaced and keeps at least `first_weight_floor` (0.25) of the mass.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


class SampleMemory:
    def __init__(self, capacity: int, learning_rate: float, protect_first: bool = False,
                 first_weight_floor: float | None = None) -> None:
        if capacity < 1:
            raise ValueError(f"memory capacity must be >= 1, got {capacity}")
        if not 0.0 < learning_rate < 1.0:
            raise ValueError(f"memory learning rate eta must be in (0, 1), got {learning_rate}")
        self.capacity = capacity
        self.learning_rate = learning_rate
        self.protect_first = protect_first
        self.first_weight_floor = first_weight_floor
        self.slots: list[tuple[torch.Tensor, ...] | None] = [None] * capacity
        self.weights = torch.zeros(capacity, dtype=torch.float64)

    def __len__(self) -> int:
        return sum(slot is not None for slot in self.slots)

    def initialise(self, samples: Sequence[tuple[torch.Tensor, ...]], weights: Sequence[float]) -> None:
        """Fill the first slots with the initial samples and their weights (normalised to sum to one)."""
        if len(samples) > self.capacity:
            raise ValueError(f"{len(samples)} initial samples exceed the memory capacity {self.capacity}")
        weights = torch.as_tensor(weights, dtype=torch.float64)
        if len(weights) != len(samples) or (weights < 0).any() or weights.sum() <= 0:
            raise ValueError("initial weights must be non-negative, one per sample, and not all zero")
        self.slots = list(samples) + [None] * (self.capacity - len(samples))
        self.weights = torch.zeros(self.capacity, dtype=torch.float64)
        self.weights[: len(samples)] = weights / weights.sum()

    def add(self, sample: tuple[torch.Tensor, ...]) -> int:
        """Insert a sample with weight eta after decaying the others by (1 - eta); returns its slot."""
        candidates = self.weights.clone()
        if self.protect_first:
            candidates[0] = float("inf")
        slot = int(torch.argmin(candidates))
        self.weights *= 1.0 - self.learning_rate
        self.weights[slot] = self.learning_rate
        self.slots[slot] = sample
        self.weights /= self.weights.sum()
        if self.first_weight_floor is not None and self.weights[0] < self.first_weight_floor:
            rest = self.weights[1:].sum()
            self.weights[0] = self.first_weight_floor
            if rest > 0:
                self.weights[1:] *= (1.0 - self.first_weight_floor) / rest
        return slot

    def stacked(self, field: int) -> torch.Tensor:
        """One field of every filled slot stacked along a new first dimension (slot order)."""
        return torch.stack([slot[field] for slot in self.slots if slot is not None])

    def filled_weights(self) -> torch.Tensor:
        return self.weights[[slot is not None for slot in self.slots]]
