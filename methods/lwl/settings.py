"""LWL's inference settings: the defaults are the paper's (§3.5; notes §2.4); variants override them in
config/variants.yaml. The network's own switches (E, W, end-to-end, D) and its backbone's weights travel
inside its checkpoint."""

from __future__ import annotations

from dataclasses import dataclass, field

from methods.core.settings import from_known_keys


@dataclass
class LWLSettings:
    checkpoint: str | None = None  # the trained network (the train rule's output)
    # the switches the row's variant needs (E, W, end-to-end, box encoder), checked against the file's network
    network: dict = field(default_factory=dict)
    crop_size: list[int] = field(default_factory=lambda: [480, 832])  # [H, W] of the search region
    search_area_scale: float = 5.0  # the region is 5x the target estimate
    init_iterations: int = 20  # N_init (inference)
    update_iterations: int = 3  # N_update (inference)
    update_interval: int = 1  # every frame (box-init: 5)
    memory_capacity: int = 32  # K_max
    memory_learning_rate: float = 0.1  # eta: each older frame's weight decays by 0.9
    # the first frame keeps at least this weight and is never replaced (box-init: none, so once K_max frames
    # are stored the first frame is replaced like any other; released init_samples_minimum_weight 0)
    first_weight_floor: float | None = 0.25
    # the first update gives the new sample weight 1 before normalising (released lwl_boxinit
    # `lower_init_weight`; otherwise the stored weights are divided by 1 - eta and the new one gets eta)
    lower_init_weight: bool = False
    min_box_mass: float = 100.0  # keep the previous box if the target's probability sums to less
    box_scale_change: list[float] = field(default_factory=lambda: [0.95, 1.1])
    box_init: bool = False  # initialise from the first mask's bounding box through the box encoder (§3.7)
    device: str = "auto"
    seed: int = 0

    @classmethod
    def from_dict(cls, values: dict) -> LWLSettings:
        settings = from_known_keys(cls, values, "LWL settings")
        settings.validate()
        return settings

    def validate(self) -> None:
        def need(condition: bool, message: str) -> None:
            if not condition:
                raise ValueError(f"LWL setting {message}")

        need(self.checkpoint is not None, "checkpoint is not set: give the trained network's file (the train rule's output)")
        need(len(self.crop_size) == 2 and min(self.crop_size) >= 32, f"crop_size={self.crop_size}: [H, W], each >= 32")
        need(self.search_area_scale > 0, f"search_area_scale={self.search_area_scale}: must be > 0")
        need(self.init_iterations >= 1 and self.update_iterations >= 0,
             "init_iterations >= 1 and update_iterations >= 0")
        need(self.update_interval >= 1, f"update_interval={self.update_interval}: must be >= 1")
        need(self.memory_capacity >= 2, f"memory_capacity={self.memory_capacity}: must be >= 2")
        need(0 < self.memory_learning_rate < 1, f"memory_learning_rate={self.memory_learning_rate}: must be in (0, 1)")
        need(self.first_weight_floor is None or 0 < self.first_weight_floor < 1,
             f"first_weight_floor={self.first_weight_floor}: in (0, 1) or null")
        need(len(self.box_scale_change) == 2 and 0 < self.box_scale_change[0] <= 1 <= self.box_scale_change[1],
             f"box_scale_change={self.box_scale_change}: [low <= 1, high >= 1]")

