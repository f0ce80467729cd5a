"""LWL's inference settings: the defaults are the paper's (§3.5; notes §2.4); variants override them in
config/variants.yaml. The network's own switches (E, W, end-to-end, D; `NetworkConfig`, here too) and its
backbone's weights travel inside its checkpoint. No torch: the workflow checks every row's settings with
these classes when it builds its DAG (methods.registry)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from methods.core.settings import ScribbleSettings, from_known_keys

PYRAMID = (32, 16, 8, 4)  # decoder levels, deepest first
DECODER_INITS = ("he", "pytorch")
UNLABELLED_PIXELS = ("no_loss", "nearest_label")  # InteractiveLWLSettings


@dataclass
class NetworkConfig:
    backbone: str = "resnet50"
    feature_channels: int = 512  # C
    label_channels: int = 16  # D (with the label generator; 1 without)
    label_encoder: bool = True  # E (Table 1 "+ Label generator")
    weight_predictor: bool = True  # W (Table 1 "+ Weight predictor")
    end_to_end: bool = True  # gradients through the learner (Table 1 "+ End-to-end")
    decoder_widths: list[int] = field(default_factory=lambda: [256, 128, 128, 64])  # deepest first (notes §2.5)
    box_encoder: bool = False  # B of §3.7 (box initialisation)
    # The decoder's initial weights: "pytorch" (the released LWTLDecoder keeps PyTorch's default conv init) or
    # "he" (the paper: every module but the backbone He-initialised; with the Lovasz loss and frozen BatchNorm
    # its logits start saturated, so only the CPU presets' cross-entropy recipe uses it: docs/lwl.md,
    # "Decoder initialisation"). Only a new training reads it.
    decoder_init: str = "pytorch"

    @classmethod
    def from_dict(cls, values: dict) -> NetworkConfig:
        config = from_known_keys(cls, values, "LWL network settings")
        if config.feature_channels < 1 or config.label_channels < 1 or len(config.decoder_widths) != len(PYRAMID):
            raise ValueError(f"LWL network: feature_channels and label_channels >= 1 and {len(PYRAMID)} "
                             f"decoder_widths (deepest first), got {asdict(config)}")
        if config.decoder_init not in DECODER_INITS:
            raise ValueError(f"LWL network: decoder_init={config.decoder_init!r}, one of {DECODER_INITS}")
        return config

    @property
    def encoding_channels(self) -> int:
        return self.label_channels if self.label_encoder else 1


@dataclass
class LWLSettings:
    checkpoint: str | None = None  # the trained network (the train rule's output)
    # the switches the row's variant needs (E, W, end-to-end, box encoder), checked against the file's network
    network: dict = field(default_factory=dict)
    crop_size: list[int] = field(default_factory=lambda: [480, 832])  # [H, W] of the search region
    search_area_scale: float = 5.0  # the region is 5x the target estimate
    init_iterations: int = 20  # N_init (inference)
    update_iterations: int = 3  # N_update (inference)
    # tau is updated after the frames n (counted from 1 at the object's first frame) where n + 1 is a multiple:
    # every frame, or (box-init: 5) after frames 4, 9, ... counted from 0 (released train_skipping)
    update_interval: int = 1
    memory_capacity: int = 32  # K_max
    memory_learning_rate: float = 0.1  # eta: each older frame's weight decays by 0.9
    # the first frame keeps at least this weight and is never replaced (box-init: none, so once K_max frames
    # are stored the first frame is replaced like any other; released init_samples_minimum_weight 0)
    first_weight_floor: float | None = 0.25
    # the first update gives the new sample weight 1 before normalising (released lwl_boxinit
    # `lower_init_weight`; otherwise the stored weights are divided by 1 - eta and the new one gets eta)
    lower_init_weight: bool = False
    min_box_mass: float = 100.0  # keep the previous estimate if the target's probability sums to less
    # the per-frame change of the search region's ONE scale factor, clamped (released max_scale_change)
    box_scale_change: list[float] = field(default_factory=lambda: [0.95, 1.1])
    # initialise from the first mask's bounding box through the box encoder and decoder on the whole frame (§3.7)
    box_init: bool = False
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

@dataclass
class InteractiveLWLSettings(LWLSettings, ScribbleSettings):
    """The interactive LWL's settings (methods.lwl.interactive): LWL's and how scribbles become labels
    (methods.core.settings.ScribbleSettings)."""

    # the pixels neither the scribbles, the previous masks nor the weak negatives label: "no_loss", W x their
    # loss weight (0) on the feature grid (E is shown the label filled from the nearest labelled pixel);
    # "nearest_label", every pixel takes the nearest labelled pixel's label with weight 1 (a dense label)
    unlabelled_pixels: str = "no_loss"

    @classmethod
    def from_dict(cls, values: dict) -> InteractiveLWLSettings:
        settings = from_known_keys(cls, values, "interactive LWL settings")
        settings.validate()
        settings.validate_scribbles("interactive LWL")
        if settings.unlabelled_pixels not in UNLABELLED_PIXELS:
            raise ValueError(f"interactive LWL setting unlabelled_pixels={settings.unlabelled_pixels!r}: one of "
                             f"{list(UNLABELLED_PIXELS)}")
        if settings.box_init:
            raise ValueError("interactive LWL setting box_init=true: box initialisation makes a mask from a "
                             "box; the interactive tracker learns from the scribbles themselves")
        return settings


def check_training(row: dict, training: dict) -> None:
    """A row's network switches (its variant's `network`, E, W, end-to-end, box encoder) must be those its
    training builds (`training`: the training's settings as its job reads them); ValueError otherwise."""
    wanted = row.get("network") or {}
    built = {**asdict(NetworkConfig()), **(training.get("network") or {})}
    if training.get("box_encoder"):
        built["box_encoder"] = True
    wrong = {key: built.get(key) for key, value in wanted.items() if built.get(key) != value}
    if wrong:
        raise ValueError(f"its variant needs a network with {wanted}, but its training builds {wrong}; name a "
                         "training whose settings.network matches")
