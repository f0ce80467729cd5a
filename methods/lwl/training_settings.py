"""The settings of LWL's training (methods.lwl.training), without torch: the workflow checks every training's
settings with them when it builds its DAG (methods.registry), as the training job will read them."""

from __future__ import annotations

from dataclasses import dataclass, field

from methods.core.backbone_names import PretrainedWeights, pretrained_weights
from methods.core.settings import from_known_keys
from methods.core.training_settings import validation_settings
from methods.lwl.settings import NetworkConfig

# the losses methods.lwl.training.TRAINING_LOSSES computes
LOSSES = ("lovasz", "bce")
# Adam's rate per part (paper stage 1)
PAPER_LEARNING_RATES = {"learner": 1e-4, "target_features": 2e-5, "decoder": 1e-4, "mask_encoder": 2e-4,
                        "backbone": 2e-5, "box_encoder": 1e-3}


@dataclass
class TrainingConfig:
    network: dict = field(default_factory=dict)  # NetworkConfig (backbone, E, W, end-to-end, ...)
    # the backbone's pretrained weights by name (backbone_names.PRETRAINED_WEIGHTS); None: the released code's,
    # MASK_RCNN_R50_FPN_1X for resnet50_mrcnn (lwl_stage1.py), IMAGENET1K_V1 for resnet50 (docs/lwl.md).
    # A training with init_from takes every weight from there and reads no pretrained file.
    backbone_weights: str | None = None
    backbone_weights_file: str | None = None  # a local file of those weights instead of the download / cache
    # sources: [{"dataset": {...build_dataset spec...}, "weight": 6}]: mini-sequences drawn in these proportions
    sources: list[dict] = field(default_factory=list)
    stage: int = 1  # 1: backbone frozen; 2: backbone levels below stride 4 learn too
    box_encoder: bool = False  # train only the box encoder B (§3.7)
    init_from: str | None = None  # weights to start from (stage 2: stage 1's; box encoder: a trained network)
    epochs: int = 70  # paper stage 1: 70k iterations = 70 epochs of 1000
    iterations_per_epoch: int = 1000
    batch_size: int = 20
    milestones: list[int] = field(default_factory=lambda: [40])
    lr_gamma: float = 0.2
    # Adam's rate per part (paper stage 1; stage 2 uses `backbone` for all); a preset names only those it changes
    learning_rates: dict = field(default_factory=lambda: dict(PAPER_LEARNING_RATES))
    # False (paper, released code): every BatchNorm layer in eval mode while training. True: the decoder's
    # BatchNorm layers use batch statistics, as FRTM's R trains (a CPU-preset deviation, see docs/lwl.md)
    decoder_batch_statistics: bool = False
    # "lovasz" (paper, released code): Lovasz-softmax. "bce": binary cross-entropy on the logits, FRTM's loss
    # for R (a CPU-preset deviation: CPU-length trainings stay on the Lovasz plateau, see docs/lwl.md)
    loss: str = "lovasz"
    loss_weight: float = 100.0  # Lovasz x100 (box encoder: x10); the same factor multiplies "bce"
    crop_size: list[int] = field(default_factory=lambda: [480, 832])  # [H, W]
    frames_per_sequence: int = 4  # Q
    window: int = 100  # Q'
    init_iterations: int = 5  # N_init (training)
    update_iterations: int = 2  # N_update (training)
    # False (released code): every test frame is predicted by the train frame's target model. The released
    # LWTLNet.forward runs the N_update steps after each prediction but decodes every test frame with the
    # initial filter's last iterate (`filter_iter[-1]`), so the updates never reach a prediction or the loss
    # (tests/test_official_lwl.py reproduces its predictions). True (paper §3.6): each test frame is
    # predicted by the model updated on the frames before it.
    predict_with_updated_model: bool = False
    min_pixels: int = 10  # an object is visible in a frame with more pixels than this
    search_area_scale: float = 5.0
    rotation_degrees: float = 15.0
    scale_jitter: float = 0.2
    brightness_jitter: float = 0.2
    flip_probability: float = 0.5
    grayscale_probability: float = 0.05
    size_jitter: list[float] = field(default_factory=lambda: [0.25, 0.5])  # sigma: train frame, test frames
    # Held-out measure (methods.core.training_settings.validation_settings): None, or {"dataset": {...build_dataset
    # spec...}, "samples": 8, "every": 5}: every 5 epochs (and after the last) the loss and J of 8
    # mini-sequences of that dataset, drawn once; it changes nothing the training computes
    validation: dict | None = None
    seed: int = 0
    device: str = "auto"
    # DataLoader worker processes producing the samples (0: the training process; methods.core.trainer): the
    # samples and the weights are the same whatever the count
    num_workers: int = 0
    mixed_precision: bool = False  # forward passes under autocast (methods.core.trainer.MixedPrecision)
    # the first step's check (methods.core.preflight): false trains on whatever the first step shows
    preflight: bool = True

    def pretrained_weights(self) -> PretrainedWeights:
        """The named weights its backbone starts from (NetworkConfig.from_dict refuses a bad network first)."""
        return pretrained_weights(NetworkConfig.from_dict(self.network).backbone, self.backbone_weights)

    @property
    def forward_update_iterations(self) -> int:
        """The update steps the training forward runs: none where they reach no prediction (released code)."""
        return self.update_iterations if self.predict_with_updated_model else 0

    @classmethod
    def from_dict(cls, values: dict) -> TrainingConfig:
        config = from_known_keys(cls, values, "LWL training settings")
        config.pretrained_weights()  # a backbone or weights name it does not know
        unknown = sorted(set(config.learning_rates) - set(PAPER_LEARNING_RATES))
        if unknown:
            raise ValueError(f"learning_rates: unknown parts {unknown}; known: {sorted(PAPER_LEARNING_RATES)}")
        config.learning_rates = {**PAPER_LEARNING_RATES, **config.learning_rates}
        bad = {part: rate for part, rate in config.learning_rates.items()
               if isinstance(rate, bool) or not isinstance(rate, int | float) or not rate > 0}
        if bad:
            raise ValueError(f"learning_rates must be positive numbers, got {bad}")
        if config.loss not in LOSSES:
            raise ValueError(f"loss={config.loss!r}: one of {sorted(LOSSES)} (paper: 'lovasz')")
        if not config.sources:
            raise ValueError("training sources is empty: name at least one dataset to train on")
        for source in config.sources:
            if "dataset" not in source or float(source.get("weight", 1)) <= 0:
                raise ValueError(f"training source {source}: needs 'dataset' and a positive 'weight'")
        if config.stage not in (1, 2):
            raise ValueError(f"stage={config.stage}: 1 (backbone frozen) or 2 (backbone learns too)")
        if (config.stage == 2 or config.box_encoder) and not config.init_from:
            raise ValueError("stage 2 and box-encoder training start from trained weights: set init_from")
        if config.epochs < 1 or config.batch_size < 1 or config.iterations_per_epoch < 1:
            raise ValueError("epochs, batch_size and iterations_per_epoch must be >= 1")
        if config.frames_per_sequence < 2:
            raise ValueError(f"frames_per_sequence={config.frames_per_sequence}: a train frame and >= 1 test frame")
        if config.num_workers < 0:
            raise ValueError(f"num_workers={config.num_workers}: 0 (load in the training process) or more workers")
        config.validation = validation_settings(config.validation)
        return config
