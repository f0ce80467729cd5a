"""FRTM's inference settings: the defaults are the paper's "Ours" (§3.5); variants override them in
config/variants.yaml (one place for every table row). With them the target model's settings and the names
of the heads and initialisations, all without torch: the workflow checks every row's settings with them
when it builds its DAG (methods.registry)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from methods.core.backbone_names import BACKBONES, PretrainedWeights, pretrained_weights, target_feature_scale
from methods.core.settings import ScribbleSettings, from_known_keys

HEADS = ("refiner", "scale_offset", "base_net")  # methods.frtm.networks builds each


# D's settings (methods.frtm.target_model)
@dataclass
class TargetModelSettings:
    channels: int = 96  # c
    regularisation: tuple[float, float] = (1e-8, 1e-4)  # lambda_1, lambda_2 (paper form; see target_model's doc)
    preconditioner: tuple[float, float] = (1e-4, 1e-2)  # constant CG preconditioner per block (code)
    init_cg_iterations: tuple[int, ...] = (5, 10, 10, 10, 10)  # N_CGi, then N_CG for the other N_GN-1 steps
    update_cg_iterations: int = 10  # N_CGu, one GN step on w2 only
    kappa_min: float = 0.1
    pixel_weighting: bool = True
    feature_scale: float = 1.0  # features are multiplied by this before w1 (backbones.TARGET_FEATURE_SCALE)
    init: str = "code"  # initial w1, w2: "code" U(+-1/sqrt(fan_in)) (released) | "kaiming_normal" (paper)
    cg_forgetting_rate: float = 750  # CG state carried with factor 0.9^rate (released: 750 inference, 75 train)
    upsampling: str = "matrix"  # U: "matrix" (faster, see target_model's doc) | "interpolate" (F.interpolate, released)


TARGET_INITS = ("code", "kaiming_normal")


@dataclass
class FRTMSettings:
    # Offline parts
    backbone: str = "resnet101"
    # the backbone's pretrained weights by name (backbone_names.PRETRAINED_WEIGHTS); None: the released code's,
    # IMAGENET1K_V1 for the ResNets (frtm-vos `resnet101(pretrained=True)`; docs/frtm.md, "Backbone weights")
    backbone_weights: str | None = None
    backbone_weights_file: str | None = None  # a local state-dict file of those weights instead of the download
    checkpoint: str | None = None  # trained head (R, D-only scale/offset, or Base net); from the train rule
    head: str = "refiner"  # refiner | scale_offset (D-only) | base_net (Base net rows)
    # Target model D (paper §3.5, "Ours")
    target_channels: int = 96  # c
    augmented_samples: int = 20  # K: the original frame + 19 augmented copies
    init_cg_iterations: list[int] = field(default_factory=lambda: [5, 10, 10, 10, 10])  # N_CGi, N_CG x (N_GN-1)
    update_cg_iterations: int = 10  # N_CGu
    update_interval: int = 8  # t_s
    memory_capacity: int = 80  # K_max
    memory_learning_rate: float = 0.1  # eta
    regularisation: list[float] = field(default_factory=lambda: [1e-8, 1e-4])  # lambda (paper form)
    preconditioner: list[float] = field(default_factory=lambda: [1e-4, 1e-2])
    kappa_min: float = 0.1
    pixel_weighting: bool = True
    target_init: str = "code"  # D's initial weights: code (U(+-1/sqrt(fan_in)), released) | kaiming_normal (paper)
    cg_forgetting_rate: float = 750  # CG state carried with factor 0.9^rate (released evaluate.py: 750)
    target_upsampling: str = "matrix"  # U in D's loss: matrix (faster) | interpolate (the released op)
    target_feature_scale: float | None = None  # None: the backbone's (backbones.TARGET_FEATURE_SCALE)
    update: bool = True  # False: "Ours - no update" and D-only
    # Base net + F-T (Table 1): first-frame fine-tuning
    fine_tune_iterations: int = 0  # paper: 100
    fine_tune_batch: int = 4
    fine_tune_learning_rate: float = 1e-4  # not in the paper [unverified]
    # Running
    input_size: list[int] | None = None  # [H, W] to resize frames to (None: native size, as the paper)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    seed: int = 0
    keep_score_maps: bool = False  # keep D's coarse scores for the qualitative figure

    @classmethod
    def from_dict(cls, values: dict) -> FRTMSettings:
        settings = from_known_keys(cls, values, "FRTM settings")
        settings.validate()
        return settings

    def validate(self) -> None:
        def need(condition: bool, message: str) -> None:
            if not condition:
                raise ValueError(f"FRTM setting {message}")

        need(self.backbone in BACKBONES, f"backbone={self.backbone!r}: choose one of {list(BACKBONES)}")
        try:
            self.pretrained_weights()
        except ValueError as error:
            raise ValueError(f"FRTM setting {error}") from None
        need(self.head in HEADS, f"head={self.head!r}: choose one of {list(HEADS)}")
        need(self.checkpoint is not None, "checkpoint is not set: give the trained head's file (the train rule's output)")
        need(self.target_channels >= 1, f"target_channels={self.target_channels}: must be >= 1")
        need(self.augmented_samples >= 1, f"augmented_samples={self.augmented_samples}: must be >= 1")
        need(len(self.init_cg_iterations) >= 1 and min(self.init_cg_iterations) >= 1,
             f"init_cg_iterations={self.init_cg_iterations}: one positive CG count per Gauss-Newton step")
        need(self.update_cg_iterations >= 1, f"update_cg_iterations={self.update_cg_iterations}: must be >= 1")
        need(self.update_interval >= 1, f"update_interval={self.update_interval}: must be >= 1")
        need(self.memory_capacity >= self.augmented_samples,
             f"memory_capacity={self.memory_capacity}: must hold the {self.augmented_samples} initial samples")
        need(0 < self.memory_learning_rate < 1, f"memory_learning_rate={self.memory_learning_rate}: must be in (0, 1)")
        need(len(self.regularisation) == 2 and min(self.regularisation) >= 0,
             f"regularisation={self.regularisation}: two non-negative values (lambda_1, lambda_2)")
        need(len(self.preconditioner) == 2 and min(self.preconditioner) > 0,
             f"preconditioner={self.preconditioner}: two positive values")
        need(self.target_feature_scale is None or self.target_feature_scale > 0,
             f"target_feature_scale={self.target_feature_scale}: must be > 0, or null for the backbone's")
        need(self.target_init in TARGET_INITS, f"target_init={self.target_init!r}: choose one of {list(TARGET_INITS)}")
        need(self.cg_forgetting_rate >= 0, f"cg_forgetting_rate={self.cg_forgetting_rate}: must be >= 0")
        need(self.target_upsampling in ("matrix", "interpolate"),
             f"target_upsampling={self.target_upsampling!r}: matrix or interpolate")
        need(0 < self.kappa_min < 1, f"kappa_min={self.kappa_min}: must be in (0, 1)")
        need(self.fine_tune_iterations >= 0 and self.fine_tune_batch >= 1, "fine_tune_*: iterations >= 0, batch >= 1")
        need(self.fine_tune_iterations == 0 or self.head == "base_net",
             "fine_tune_iterations: first-frame fine-tuning belongs to the Base net + F-T row (head: base_net)")
        need(self.input_size is None or (len(self.input_size) == 2 and min(self.input_size) >= 32),
             f"input_size={self.input_size}: [height, width], each >= 32, or null for the native size")
        need(self.device == "auto" or self.device == "cpu" or self.device.startswith("cuda"),
             f"device={self.device!r}: auto, cpu, cuda or cuda:N")

    def target_model(self) -> TargetModelSettings:
        return TargetModelSettings(
            channels=self.target_channels, regularisation=tuple(self.regularisation),
            preconditioner=tuple(self.preconditioner), init_cg_iterations=tuple(self.init_cg_iterations),
            update_cg_iterations=self.update_cg_iterations, kappa_min=self.kappa_min,
            pixel_weighting=self.pixel_weighting, feature_scale=self.resolved_feature_scale(),
            init=self.target_init, cg_forgetting_rate=self.cg_forgetting_rate, upsampling=self.target_upsampling)

    def pretrained_weights(self) -> PretrainedWeights:
        return pretrained_weights(self.backbone, self.backbone_weights)

    def resolved_feature_scale(self) -> float:
        if self.target_feature_scale is not None:
            return self.target_feature_scale
        return target_feature_scale(self.backbone)

    def replace(self, **changes) -> FRTMSettings:
        return dataclasses.replace(self, **changes)


@dataclass
class InteractiveFRTMSettings(FRTMSettings, ScribbleSettings):
    """The interactive FRTM's settings (methods.frtm.interactive): FRTM's and how scribbles become labels
    (methods.core.settings.ScribbleSettings)."""

    @classmethod
    def from_dict(cls, values: dict) -> InteractiveFRTMSettings:
        settings = from_known_keys(cls, values, "interactive FRTM settings")
        settings.validate()
        settings.validate_scribbles("interactive FRTM")
        if settings.head == "base_net":
            raise ValueError("interactive FRTM setting head=base_net: the Base net has no target model to learn "
                             "from scribbles; use refiner or scale_offset")
        return settings


def check_training(row: dict, training: dict) -> None:
    """A row's backbone and its pretrained weights (as its job reads its settings) must be those its
    training fitted the head on (`training`: the training's settings); ValueError otherwise."""
    from methods.frtm.training_settings import TrainingConfig

    runs = pretrained_weights(row.get("backbone", FRTMSettings.backbone), row.get("backbone_weights"))
    fitted = pretrained_weights(training.get("backbone", TrainingConfig.backbone), training.get("backbone_weights"))
    if runs != fitted:
        raise ValueError(f"it runs backbone {runs.backbone} with weights {runs.name}, but its training fits the head "
                         f"on {fitted.backbone} with {fitted.name}; set backbone / backbone_weights alike")
