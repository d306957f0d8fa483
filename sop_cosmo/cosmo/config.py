"""One frozen config dataclass per pipeline stage: the single source of every default.

The CLI builds its options from these classes (:func:`sop_cosmo._options.add_options`), the
Snakemake workflow fills its config sections from them (:mod:`sop_cosmo.workflow_config`),
and each stage function takes its class (plus keyword overrides, :func:`resolve`). A test
checks that the workflow's JSON schema names the same keys with the same types.

Nothing here does I/O.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

from sop_cosmo.core import SOPConfig

__all__ = [
    "GROUP_TYPES",
    "MODEL_KINDS",
    "NOISE_MODELS",
    "PARAM_NAMES",
    "SIM_FIELDS",
    "SOP_GENERATORS",
    "SPLITS",
    "TYPE_UNITS",
    "AnalyzeConfig",
    "BaselinesConfig",
    "CNNOptions",
    "ControlsConfig",
    "EvaluateConfig",
    "NullsConfig",
    "PreprocessConfig",
    "SOPOptions",
    "SimulateConfig",
    "StatsOptions",
    "Thresholds",
    "TrainConfig",
    "TrainStageConfig",
    "model_options",
    "resolve",
]

#: Group types of the void/cluster analysis, in the order of the integer codes 0, 1, 2.
GROUP_TYPES: tuple[str, str, str] = ("void", "cluster", "other")
#: The regressors ``sop-cosmo train --model`` builds.
MODEL_KINDS: tuple[str, str, str] = ("cnn", "sop", "stats")
#: Patch-file splits, split by cosmology.
SPLITS: tuple[str, str, str] = ("train", "val", "test")
#: Kinds of field ``sop-cosmo simulate --field`` draws.
SIM_FIELDS: tuple[str, str] = ("lognormal", "gaussian")
#: Target parameters of the pipeline, as named in the patch files.
PARAM_NAMES: tuple[str, str] = ("Om", "s8")
#: Shape-noise models per tomographic bin: galaxy shape dispersion σ_e and effective galaxies
#: per arcmin². DES Y3: 1.67 per bin of 4. LSST Y10 forecast: 27 per arcmin² over 4 bins.
NOISE_MODELS: dict[str, dict[str, float] | None] = {
    "none": None,
    "des-y3": {"sigma_e": 0.26, "n_gal": 1.67},
    "lsst-y10": {"sigma_e": 0.26, "n_gal": 6.75},
}

C = TypeVar("C")


def _opt(default: Any, help: str, **extra: Any) -> Any:
    """A dataclass field whose metadata carries the CLI help (and optional CLI hints)."""
    meta = {"help": help, **extra}
    if isinstance(default, (list, dict, set)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def resolve(cls: type[C], config: C | None = None, overrides: dict[str, Any] | None = None) -> C:
    """``config`` (default ``cls()``) with keyword ``overrides`` applied.

    An unknown override key is a ``ValueError`` that names it and the closest known key.
    """
    base = config if config is not None else cls()
    if not overrides:
        return base
    known = [f.name for f in fields(cls)]
    for key in overrides:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"{cls.__name__}: unknown setting {key!r}{hint}")
    return dataclasses.replace(base, **overrides)


# ------------------------------------------------------------------------------------ stages


@dataclass(frozen=True)
class SimulateConfig:
    """``sop-cosmo simulate``: a lognormal grid written in the CosmoGridV1 layout."""

    n_cosmologies: int = _opt(20, "cosmologies drawn (Sobol, Om-s8 polygon cut); ≥ 3")
    n_perms: int = _opt(1, "maps per cosmology")
    nside: int = _opt(512, "HEALPix nside of the maps (a power of two)")
    seed: int = _opt(0, "seed of the draws and the maps")
    vary: tuple[str, ...] = _opt((), "also draw these parameters, e.g. H0,Ob,ns,w0")
    metainfo_only: bool = _opt(
        False, "write the metainfo only, no maps: a full-size grid to plan a workflow (-n)"
    )
    field: str = _opt(
        "lognormal",
        "lognormal maps, or gaussian: Gaussian maps with the same κ spectra (the null of "
        "non-Gaussian structure)",
        choices=SIM_FIELDS,
    )


@dataclass(frozen=True)
class PreprocessConfig:
    """``sop-cosmo preprocess``: noisy, smoothed flat patches split by cosmology."""

    patch_size: int = _opt(32, "pixels per patch side")
    noise: str = _opt("none", "shape noise added on the sphere", choices=tuple(NOISE_MODELS))
    smoothing_arcmin: float = _opt(0.0, "FWHM of the Gaussian smoothing (0: none)")
    bins: tuple[int, ...] = _opt((1, 2, 3, 4), "tomographic bins, e.g. 1,2,3,4")
    seed: int = _opt(0, "seed of the split, the noise and the augmentation")
    pixel_arcmin: float | None = _opt(None, "patch pixel size (default: the map's pixel scale)")
    centres_nside: int | None = _opt(None, "HEALPix nside of the patch-centre grid")
    augment: bool = _opt(False, "random rot90/flip of the training patches")
    a_ia: float = _opt(0.0, "intrinsic-alignment amplitude: signal = kg + a_ia * ia")
    variant: str = _opt("nobaryons", "map variant", choices=("nobaryons", "baryonified"))
    sets: tuple[str, ...] = _opt(("grid",), "CosmoGrid sets: grid, fiducial or grid,fiducial")
    metainfo: str | None = _opt(None, "metainfo file (default: ROOT/CosmoGrid/...metainfo.h5)")
    params: tuple[str, ...] = _opt(
        PARAM_NAMES,
        "target parameters: metainfo fields (Om, s8, H0, ...) or S8 = s8 (Om/0.3)^0.5; "
        "S8,Om is the S8 basis (S8 and Om at fixed S8)",
    )
    fractions: tuple[float, ...] = _opt((0.8, 0.1, 0.1), "train/val/test cosmology fractions")
    permute_labels: bool = _opt(
        False,
        "the permuted-label null: each training cosmology's patches carry the targets of "
        "another training cosmology (a derangement drawn from --seed); val and test keep theirs",
    )
    chunks: int = _opt(
        1, "cut the cosmologies into this many chunks, one job each, then gather the splits"
    )


@dataclass(frozen=True)
class TrainConfig:
    """``sop-cosmo train``: hyper-parameters of one training run (JSON-serialisable)."""

    kind: str = _opt("cnn", "model kind", choices=MODEL_KINDS, flag="--model")
    epochs: int = _opt(20, "maximum epochs (early stopping may end the run sooner)")
    batch_size: int = _opt(32, "training batch (the last partial batch is dropped)")
    eval_batch_size: int = _opt(256, "validation batch")
    lr: float = _opt(1e-3, "peak AdamW learning rate")
    weight_decay: float = _opt(1e-4, "AdamW decoupled weight decay")
    warmup_fraction: float = _opt(0.05, "linear warm-up as a fraction of all steps")
    warmup_steps: int | None = _opt(None, "linear warm-up in steps (overrides the fraction)")
    min_lr_ratio: float = _opt(0.01, "the cosine decay ends at lr * this")
    grad_clip: float | None = _opt(1.0, "maximum global gradient norm (none: no clipping)")
    generator_lr_ratio: float = _opt(
        0.1, "sop: the group generator's learning rate as a fraction of lr"
    )
    selector_epochs: int = _opt(
        2,
        "sop: the first epochs (at most half of them, rounded up) train the selector alone (the "
        "generator's lr is 0)",
    )
    patience: int | None = _opt(10, "stop after this many epochs without a better val loss")
    checkpoint_every: int = _opt(500, "also write last.pt every this many steps (0: epochs)")
    seed: int = _opt(0, "seeds initialisation, dropout and the batch order")
    device: str = _opt("auto", "auto (CUDA when available), cpu, cuda or cuda:N")
    amp: bool = _opt(True, "bf16 autocast on CUDA (CPU always runs fp32)")
    compile: bool = _opt(False, "torch.compile the model on CUDA")
    num_workers: int = _opt(0, "DataLoader worker processes")
    in_memory: bool = _opt(
        False,
        "read the whole split into RAM (a little faster on small splits); off: stream it from "
        "the patch files, in memory that does not grow with the number of patches",
    )
    model_options: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "JSON overrides of the model's options"}
    )
    stats_options: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "JSON keyword arguments of summary_statistics"}
    )
    backbone: str | None = _opt(None, "RUN_CNN/model.pt (required by, and only by, sop)")

    def __post_init__(self) -> None:
        if self.kind not in MODEL_KINDS:
            raise ValueError(f"kind: expected one of {MODEL_KINDS}, got {self.kind!r}")
        for name in ("epochs", "batch_size", "eval_batch_size", "lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: expected > 0, got {getattr(self, name)}")
        if not self.generator_lr_ratio >= 0:
            raise ValueError(f"generator_lr_ratio: expected ≥ 0, got {self.generator_lr_ratio}")
        for name in ("weight_decay", "checkpoint_every", "num_workers", "selector_epochs"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name}: expected ≥ 0, got {getattr(self, name)}")
        if not 0 <= self.warmup_fraction < 1:
            raise ValueError(f"warmup_fraction: expected in [0, 1), got {self.warmup_fraction}")
        if self.warmup_steps is not None and self.warmup_steps < 0:
            raise ValueError(f"warmup_steps: expected ≥ 0, got {self.warmup_steps}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"min_lr_ratio: expected in [0, 1], got {self.min_lr_ratio}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"grad_clip: expected > 0 or None, got {self.grad_clip}")
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"patience: expected ≥ 1 or None, got {self.patience}")
        if self.kind == "sop" and not self.backbone:
            raise ValueError(
                "backbone: the sop model wraps a trained cnn; pass --backbone RUN_CNN/model.pt"
            )
        if self.kind != "sop" and self.backbone:
            raise ValueError(f"backbone: only the sop model takes a backbone, not {self.kind!r}")
        if self.backbone is not None:
            object.__setattr__(self, "backbone", str(self.backbone))

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON and ``torch.save(weights_only)`` safe)."""
        import json

        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"config: unknown keys {unknown}; known: {sorted(known)}")
        return cls(**d)


@dataclass(frozen=True)
class TrainStageConfig:
    """The workflow's ``train`` section: the three runs of one pipeline, once per seed.

    Epochs left ``None`` take :attr:`TrainConfig.epochs`; options left out take the model
    defaults (:class:`CNNOptions`, :class:`SOPOptions`, :class:`StatsOptions`).
    """

    device: str = _opt("auto", "auto uses CUDA when present", choices=("auto", "cpu", "cuda"))
    gpus: int = _opt(
        1,
        "GPUs of each CNN and SOP training job (not with device cpu); more than 1 runs it as "
        "torchrun --standalone --nproc-per-node gpus (one node; the batch stays the global one)",
    )
    seeds: tuple[int, ...] = _opt(
        (0, 1, 2),
        "training seeds (initialisation and batch order): every model is trained once per "
        "seed, and the analysis combines the SOP of every seed",
    )
    cnn_epochs: int | None = _opt(None, "epochs of the black-box CNN")
    sop_epochs: int | None = _opt(None, "epochs of SOP around the CNN")
    stats_epochs: int | None = _opt(None, "epochs of the statistics MLP")
    cnn_options: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "CNN options (CNNOptions)"}
    )
    sop_options: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "SOP options (SOPOptions)"}
    )


@dataclass(frozen=True)
class EvaluateConfig:
    """``sop-cosmo evaluate``: MSE per parameter of a checkpoint on a patch file."""

    device: str = _opt("auto", "auto, cpu or cuda[:N]")
    batch_size: int = _opt(256, "inference batch")


@dataclass(frozen=True)
class Thresholds:
    """The void/cluster typing rule (docs/contracts.md, "Void and cluster definitions")."""

    void_sigma: float = _opt(0.0, "void pixel: kappa < this * sigma")
    cluster_sigma: float = _opt(3.0, "cluster pixel: kappa > this * sigma")
    tau_void: float = _opt(0.6, "a void group's minimum void-pixel fraction")
    tau_cluster: float = _opt(0.015, "a cluster group's minimum cluster-pixel fraction")
    bin: int = _opt(
        -1, "bin index typed by the per-patch rule and shown in figures (-1: the last, highest z)"
    )


#: Units of the void/cluster typing: noise (ν = κ/σ_noise per bin) or patch (κ/σ of the patch).
TYPE_UNITS: tuple[str, str] = ("noise", "patch")


@dataclass(frozen=True)
class AnalyzeConfig(Thresholds):
    """``sop-cosmo analyze``: void/cluster analysis of a trained SOP's groups (of one or more
    training seeds), with the skill and the claims gates (docs/analysis.md)."""

    type_units: str = _opt(
        "noise",
        "noise: type on every bin in ν = κ/σ_noise (the patch file's sigma_noise; nu_void, "
        "nu_cluster); patch: the anchor's rule, κ/σ of each patch on --bin (void_sigma, "
        "cluster_sigma)",
        choices=TYPE_UNITS,
    )
    nu_void: float = _opt(0.0, "noise units: void pixel ν ≤ −nu_void")
    nu_cluster: float = _opt(4.0, "noise units: cluster pixel ν ≥ nu_cluster")
    min_r2: float = _opt(
        0.5, "no claim unless every seed's test R² ≥ this on every parameter (the skill gate)"
    )
    min_cosmologies: int = _opt(5, "no claim from fewer test cosmologies (bootstrap units)")
    null_summary: str | None = _opt(
        None,
        "summary.json of the permuted-label null's analysis: no claim unless its |value| "
        "exceeds the null's for the same candidate, and none if the null made a claim",
    )
    n_boot: int = _opt(1000, "bootstrap resamples over test cosmologies (and seeds)")
    max_maps: int | None = _opt(None, "analyse at most this many test maps, spread evenly")
    region_maps: int | None = _opt(
        512,
        "replace the void and cluster regions (region_importance) on at most this many "
        "of the analysed maps, spread evenly; none: all",
    )
    seed: int = _opt(0, "bootstrap seed")
    device: str = _opt("auto", "auto, cpu or cuda[:N]")
    batch_size: int = _opt(64, "maps per forward pass")


@dataclass(frozen=True)
class BaselinesConfig(Thresholds):
    """``sop-cosmo baselines``: post-hoc -F baselines scored like the SOP."""

    methods: str = _opt("all", "all, or comma-separated method names")
    max_maps: int | None = _opt(32, "maps attributed per method, spread evenly")
    keep_fraction: float | None = _opt(None, "kept fraction of patches (default: the SOP's)")
    n_samples: int = _opt(200, "samples of KernelShap, Lime and RISE")
    ig_steps: int = _opt(50, "IntegratedGradients steps")
    id_steps: int | None = _opt(None, "insertion/deletion steps (default: one per patch)")
    seed: int = _opt(0, "seed of the sampling methods")
    device: str = _opt("auto", "auto, cpu or cuda[:N]")


@dataclass(frozen=True)
class ControlsConfig:
    """``sop-cosmo controls``: positive, swapped and negative controls on planted data."""

    quick: bool = _opt(False, "the small size (about a minute on one CPU core)")
    seed: int = _opt(0, "seeds data, training and bootstraps")
    threads: int = _opt(1, "torch CPU threads (1 is fastest for these small models)")
    train_seeds: int | None = _opt(
        None,
        "CNN + SOP trainings per control, analysed as one ensemble (default: 3, 1 with --quick)",
    )


@dataclass(frozen=True)
class NullsConfig:
    """The workflow's ``nulls`` section: optional runs whose answer is known to be "no claim"."""

    permuted_labels: bool = _opt(
        False,
        "also preprocess with permute_labels, train a CNN and an SOP on it (the first of "
        "train.seeds) and analyse them into results/analyze_null_permuted/; the real analysis "
        "then gates its claims on that summary (analyze --null-summary)",
    )
    gaussian_maps: bool = _opt(
        False,
        "also simulate the grid with Gaussian maps of the same spectra (simulate --field "
        "gaussian), cut, train a CNN and an SOP (the first of train.seeds), evaluate and analyse "
        "them (results/analyze_null_gaussian/) and compare them with the lognormal run "
        "(results/nulls/gaussian_vs_lognormal.json); simulated data only",
    )


# ----------------------------------------------------------------------------- model options

#: Kinds of SOP candidate groups (:attr:`SOPOptions.generator`).
SOP_GENERATORS: tuple[str, str] = ("learned", "watershed")


@dataclass(frozen=True)
class CNNOptions:
    """The anchor's convnet: per stage a k×k conv, LeakyReLU, 2×2 max-pool; then an MLP."""

    widths: tuple[int, ...] = _opt((16, 32, 48), "channels of the conv stages")
    kernel: int = _opt(4, "convolution size")
    hidden: tuple[int, ...] = _opt((128, 64, 32), "fully connected widths")
    mask_prob: float = _opt(0.0, "probability that a training input is randomly masked")
    mask_keep: float = _opt(0.2, "fraction of grid cells a masked input keeps")
    mask_patch: int = _opt(6, "pixels per side of a masking grid cell")


@dataclass(frozen=True)
class SOPOptions:
    """SOP around the trained CNN (docs/training.md). Settings the cosmology models share with
    every SOP take :class:`~sop_cosmo.core.SOPConfig`'s defaults, except four chosen by
    measurement on planted maps (docs/training.md, "SOP defaults"): 5 active groups, groups
    that keep half the cells, groups that compete for cells, and a backbone that trains with
    the SOP (a frozen CNN has never seen a masked map)."""

    attention_patch: int = _opt(6, "pixels per side of a mask grid cell")
    generator: str = _opt(
        "learned",
        "candidate groups: learned (the attention generator) or watershed (the peak and trough "
        "basins of the smoothed segment_bin map, largest first, docs/training.md)",
        choices=SOP_GENERATORS,
    )
    segment_bin: int = _opt(-1, "watershed: the bin segmented (-1: the last, as the analysis)")
    segment_smoothing: float = _opt(
        2.0, "watershed: Gaussian sigma in pixels of the smoothing before segmenting (0: none)"
    )
    n_groups: int = _opt(20, "groups G per map (watershed: the most basins kept)")
    keep_fraction: float = _opt(
        0.5, "fraction of grid cells a group keeps (0.2 cost 1.6x the MSE at 5 active groups)"
    )
    n_heads: int = _opt(SOPConfig.n_heads, "attention heads of the group generator")
    group_gen_scale: float = _opt(SOPConfig.group_gen_scale, "scale of the generator's logits")
    group_sel_scale: float = _opt(
        SOPConfig.group_sel_scale, "scale of the selector's raw scores (active_groups null)"
    )
    active_groups: int | None = _opt(
        5, "groups with non-zero weight per map and parameter (null: the anchor's raw rule)"
    )
    mask_mode: str = _opt(SOPConfig.mask_mode, "gradient path of the masks")
    compete: bool = _opt(True, "groups compete for grid cells (keeps them apart)")
    freeze_backbone: bool = _opt(False, "keep the CNN fixed while SOP trains")
    selector_init: str = _opt(SOPConfig.selector_init, "initialisation of the selector's queries")
    chunk_size: int = _opt(SOPConfig.chunk_size, "masked inputs per backbone call")
    feature_stage: int | None = _opt(
        None,
        "CNN stage (1 = first) whose feature map the generator reads; none: the deepest one "
        "at least as fine as the mask grid",
    )
    baseline: float = _opt(0.0, "value of masked-out pixels (standardised units)")


@dataclass(frozen=True)
class StatsOptions:
    """The MLP on summary statistics."""

    hidden: tuple[int, ...] = _opt((128, 64), "fully connected widths")
    dropout: float = _opt(0.1, "dropout probability")


_OPTIONS: dict[str, type] = {"cnn": CNNOptions, "sop": SOPOptions, "stats": StatsOptions}


def model_options(kind: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """JSON-serialisable options of a model kind: the defaults with ``overrides`` applied.

    Tuples become lists (the form checkpoints and JSON hold). Unknown keys are kept: the
    model builder rejects them with its own message.
    """
    if kind not in _OPTIONS:
        raise ValueError(f"kind: expected one of {MODEL_KINDS}, got {kind!r}")
    base = dataclasses.asdict(_OPTIONS[kind]())
    merged = {**base, **(overrides or {})}
    return {k: list(v) if isinstance(v, tuple) else v for k, v in merged.items()}
