"""Sample memory: the training set of an online target model, with per-sample weights (FRTM §3.4, LWL §3.3).

Each slot holds tensors (features, labels, ...) and a weight gamma. A new sample gets weight
gamma_i = gamma_{i-1} / (1 - eta) before the weights are normalised to sum to one; equivalently every
stored weight decays by (1 - eta) and the new sample gets eta. When the memory is full, the sample with
the smallest weight is replaced (empty slots weigh 0, so they fill first).

Rule "decay" is the papers' description above. Rule "released" is what both released trackers compute
(frtm-vos model/memory.py and pytracking's LWL `update_sample_weights`; FRTM: eta = 0.1, K_max = 80, the
first-frame samples not protected; LWL: K_max = 32): the new sample's weight is the previously ADDED
sample's weight / (1 - eta), the other weights stay, then all are normalised. Equal to
"decay" only while empty slots are filled and no floor acts; it differs on the first update, where there
is no previous sample: every stored weight is divided by (1 - eta) and the new one gets eta (lwl_ytvos:
first frame 1 -> weights 0.917, 0.083, not 0.9, 0.1), or, with `lower_init_weight` (lwl_boxinit), the new
sample gets 1 before normalising (0.5, 0.5). With a first-frame floor (lwl_ytvos: 0.25) the first frame is
never replaced, and when its weight falls below the floor the weights are divided by (floor + the others'
sum) and the first set to the floor (the released arithmetic: the total is then not exactly 1). Without a
floor (lwl_boxinit: init_samples_minimum_weight 0) the first frame is replaced like any other once the
memory is full.

Protected samples (`initialise(..., protected=n)`: the first n initial samples) are never replaced, under
either rule; their weights change as the others'. The interactive trackers protect the samples of every
frame the user scribbled on (methods/frtm/interactive.py), which the semi-supervised trackers never do.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


class SampleMemory:
    RULES = ("decay", "released")

    def __init__(self, capacity: int, learning_rate: float, protect_first: bool = False,
                 first_weight_floor: float | None = None, rule: str = "decay",
                 lower_init_weight: bool = False) -> None:
        if capacity < 1:
            raise ValueError(f"memory capacity must be >= 1, got {capacity}")
        if not 0.0 < learning_rate < 1.0:
            raise ValueError(f"memory learning rate eta must be in (0, 1), got {learning_rate}")
        if rule not in self.RULES:
            raise ValueError(f"memory weight rule {rule!r}: one of {self.RULES}")
        if rule == "released" and protect_first != (first_weight_floor is not None):
            raise ValueError("the released LWL memory protects the first frame exactly when it has a weight floor")
        self.rule = rule
        self.lower_init_weight = lower_init_weight
        self.previous_slot: int | None = None  # the slot the last added sample went to (rule "released")
        self.initial_count = 0
        self.protected = 0  # slots [0, protected) are never replaced
        self.capacity = capacity
        self.learning_rate = learning_rate
        self.protect_first = protect_first
        self.first_weight_floor = first_weight_floor
        self.slots: list[tuple[torch.Tensor, ...] | None] = [None] * capacity
        self.weights = torch.zeros(capacity, dtype=torch.float64)

    def __len__(self) -> int:
        return sum(slot is not None for slot in self.slots)

    def initialise(self, samples: Sequence[tuple[torch.Tensor, ...]], weights: Sequence[float],
                   protected: int = 0) -> None:
        """Fill the first slots with the initial samples and their weights (normalised to sum to one); the
        first `protected` of them are never replaced."""
        if len(samples) > self.capacity:
            raise ValueError(f"{len(samples)} initial samples exceed the memory capacity {self.capacity}")
        if not 0 <= protected <= len(samples) or (protected == self.capacity and protected > 0):
            raise ValueError(f"protected={protected}: at most the {len(samples)} initial samples, and fewer than "
                             f"the capacity {self.capacity} (a new sample needs a slot)")
        weights = torch.as_tensor(weights, dtype=torch.float64)
        if len(weights) != len(samples) or (weights < 0).any() or weights.sum() <= 0:
            raise ValueError("initial weights must be non-negative, one per sample, and not all zero")
        self.slots = list(samples) + [None] * (self.capacity - len(samples))
        self.weights = torch.zeros(self.capacity, dtype=torch.float64)
        self.weights[: len(samples)] = weights / weights.sum()
        self.initial_count = len(samples)
        self.protected = protected
        self.previous_slot = None

    def add(self, sample: tuple[torch.Tensor, ...]) -> int:
        """Insert a sample (rule "decay": with weight eta after decaying the others by (1 - eta); rule "released":
        see the module docstring); returns its slot."""
        if self.rule == "released":
            return self._add_lwl(sample)
        candidates = self.weights.clone()
        if self.protect_first:
            candidates[0] = float("inf")
        candidates[: self.protected] = float("inf")
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

    def _add_lwl(self, sample: tuple[torch.Tensor, ...]) -> int:
        """The released LWL tracker's update_sample_weights + update_memory, for one sample."""
        weights, eta, first = self.weights, self.learning_rate, self.initial_count
        filled = len(self)
        if filled < self.capacity:
            slot = filled  # fill in order
        else:  # the lightest, not among the first-frame samples when they have a floor
            start = first if self.first_weight_floor is not None else self.protected
            slot = start + int(torch.argmin(weights[start:]))
        if self.previous_slot is None:  # the first update
            if self.lower_init_weight:
                weights[slot] = 1.0
            else:
                weights /= 1.0 - eta
                weights[slot] = eta
        else:
            weights[slot] = weights[self.previous_slot] / (1.0 - eta)
        weights /= weights.sum()
        floor = self.first_weight_floor
        if floor is not None and weights[:first].sum() < floor:
            weights /= floor + weights[first:].sum()
            weights[:first] = floor / first
        self.previous_slot = slot
        self.slots[slot] = sample
        return slot

    def stacked(self, field: int) -> torch.Tensor:
        """One field of every filled slot stacked along a new first dimension (slot order)."""
        return torch.stack([slot[field] for slot in self.slots if slot is not None])

    def filled_weights(self) -> torch.Tensor:
        return self.weights[[slot is not None for slot in self.slots]]
