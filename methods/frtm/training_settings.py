"""The settings of FRTM's offline training (methods.frtm.training), without torch: the workflow checks every
training's settings with them when it builds its DAG (methods.registry), as the training job will read them."""

from __future__ import annotations

from dataclasses import dataclass, field

from methods.core.backbone_names import PretrainedWeights, pretrained_weights, target_feature_scale
from methods.core.settings import from_known_keys
from methods.core.training_settings import validation_settings
from methods.frtm.settings import HEADS, TargetModelSettings


@dataclass
class TrainingConfig:
    head: str = "refiner"
    backbone: str = "resnet101"
    backbone_weights: str | None = None  # by name; None: the released code's (see methods.frtm.settings)
    backbone_weights_file: str | None = None  # a local state-dict file of those weights instead of the download
    # sources: [{"dataset": {...build_dataset spec...}, "repeats": 8} | {"dataset": ..., "pairs": 4000}]
    sources: list[dict] = field(default_factory=list)
    frame_size: list[int] = field(default_factory=lambda: [480, 854])  # H, W (released code: 854x480)
    epochs: int = 180  # paper: 120 + 60
    lr_step: int = 120
    learning_rate: float = 1e-3
    lr_gamma: float = 0.1
    weight_decay: float = 1e-5
    amsgrad: bool = False  # released code: True
    batch_size: int = 16
    target_frames: int = 2
    # Reference frames: visible frames (>= min_area_fraction of the object's largest area, >= 100 px)
    min_area_fraction: float = 0.25
    min_pixels: int = 100
    reference_frames_per_object: int | None = None  # None: any visible frame (paper); N: N fixed candidates
    # Cached target models as the released train.py builds them: K=15, c=32, no pixel weighting, memory 20,
    # lambda (1e-5, 1e-4) (written squared here, see target_model.py), preconditioner (1e-5, 1e-4),
    # CG_forgetting_rate 75, one filter-only pass after the joint init
    cache_dir: str = "resources/cache/target-models"
    cache_samples: int = 15
    cache_channels: int = 32
    cache_regularisation: list[float] = field(default_factory=lambda: [1e-10, 1e-8])  # code (1e-5, 1e-4) squared
    cache_preconditioner: list[float] = field(default_factory=lambda: [1e-5, 1e-4])  # train.py precond
    cache_cg_forgetting_rate: float = 75  # train.py (evaluate.py: 750)
    cache_init_cg_iterations: list[int] = field(default_factory=lambda: [5, 10, 10, 10, 10])
    cache_memory_capacity: int = 20
    # Held-out measure (methods.core.training_settings.validation_settings): None, or {"dataset": {...build_dataset
    # spec...}, "samples": 8, "every": 5}: every 5 epochs (and after the last) the loss and J of 8 samples
    # of that dataset, drawn once; it changes nothing the training computes
    validation: dict | None = None
    seed: int = 0
    device: str = "auto"
    # DataLoader worker processes producing the samples (0: the training process; methods.core.trainer): the
    # samples and the weights are the same whatever the count
    num_workers: int = 0
    mixed_precision: bool = False  # forward passes under autocast (methods.core.trainer.MixedPrecision)
    # the first step's check (methods.core.preflight): false trains on whatever the first step shows
    preflight: bool = True

    @classmethod
    def from_dict(cls, values: dict) -> TrainingConfig:
        config = from_known_keys(cls, values, "FRTM training settings")
        if config.head not in HEADS:
            raise ValueError(f"training head={config.head!r}: choose one of {list(HEADS)}")
        config.pretrained_weights()  # a backbone or weights name it does not know
        if not config.sources:
            raise ValueError("training sources is empty: name at least one dataset to train on")
        for source in config.sources:
            if "dataset" not in source or ("repeats" in source) == ("pairs" in source):
                raise ValueError(f"training source {source}: needs 'dataset' and exactly one of 'repeats' or 'pairs'")
        if config.epochs < 1 or config.batch_size < 1 or config.lr_step < 1:
            raise ValueError("epochs, batch_size and lr_step must be >= 1")
        if config.num_workers < 0:
            raise ValueError(f"num_workers={config.num_workers}: 0 (load in the training process) or more workers")
        config.validation = validation_settings(config.validation)
        return config

    def pretrained_weights(self) -> PretrainedWeights:
        return pretrained_weights(self.backbone, self.backbone_weights)

    def target_model_settings(self) -> TargetModelSettings:
        return TargetModelSettings(channels=self.cache_channels, regularisation=tuple(self.cache_regularisation),
                                   preconditioner=tuple(self.cache_preconditioner),
                                   init_cg_iterations=tuple(self.cache_init_cg_iterations), pixel_weighting=False,
                                   feature_scale=target_feature_scale(self.backbone),
                                   cg_forgetting_rate=self.cache_cg_forgetting_rate)
