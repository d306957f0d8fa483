"""Stage ``controls``: positive, swapped and negative controls of the void/cluster analysis.

Each control writes small patch files (docs/contracts.md, "Patch file") whose maps carry a
*known* preference (:mod:`sop_cosmo.cosmo.maths.planted`), trains the project's CNN and then SOP
on them (:func:`sop_cosmo.cosmo.stages.train.train`) on ``train_seeds`` training seeds, and runs
the project's analysis (:func:`sop_cosmo.cosmo.stages.analyse.analyze`) of them as one ensemble
on the test split. The positive and swapped controls also demand that the trained SOP beat its
untrained twin (:func:`untrained_checkpoint`). This stage replays the pipeline, so it alone
imports other stages.

The verdicts are :mod:`sop_cosmo.cosmo.control_verdicts`; the pass criteria and what to
conclude from them are in ``docs/controls.md``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from sop_cosmo._io import atomic_path
from sop_cosmo._progress import progress_write
from sop_cosmo.cosmo.config import (
    PARAM_NAMES,
    SPLITS,
    ControlsConfig,
    TrainConfig,
    resolve,
)
from sop_cosmo.cosmo.contracts.patchfile import write_patch_file
from sop_cosmo.cosmo.control_verdicts import judge, paired_gain, planted_signs
from sop_cosmo.cosmo.maths.planted import CONTROL_KINDS, ControlSpec, draw_control

__all__ = [
    "DEFAULT",
    "QUICK",
    "ControlsSettings",
    "judge",
    "paired_gain",
    "planted_signs",
    "run_control",
    "run_controls",
    "untrained_checkpoint",
    "write_control",
]


def write_control(spec: ControlSpec, out_dir: str | os.PathLike) -> dict[str, int]:
    """Draw a planted data set and write ``out_dir/{train,val,test}.h5``.

    Each file holds ``kappa`` (N, 1, H, W) float32 in physical units, ``params`` (N, 2) with
    ``attrs["names"] = ["Om", "s8"]``, ``cosmo_id`` (N,) int64 (the splits share none), and
    ``u`` (N, 2), ``void_scale`` (N,), ``peak_scale`` (N,) for inspection. File attributes:
    the patch-file set (docs/contracts.md, "Patch file"; ``source="simulated"``) plus
    ``simulator="planted"``, ``control`` and ``spec`` (JSON).

    Returns
    -------
    dict
        Maps per split.
    """
    out = Path(out_dir)
    counts: dict[str, int] = {}
    for name, split in draw_control(spec).items():
        write_patch_file(
            out / f"{name}.h5", kappa=split.kappa, params=split.params, cosmo_id=split.cosmo_id,
            param_names=PARAM_NAMES,
            attrs={
                "pixel_arcmin": 1.0, "patch_size": spec.patch_size, "nside": 0, "bins": [1],
                "smoothing_arcmin": 0.0, "noise": "none", "source": "simulated",
                "simulator": "planted", "control": spec.kind, "spec": json.dumps(spec.to_dict()),
            },
            extra={"u": split.u, "void_scale": split.void_scale, "peak_scale": split.peak_scale},
        )  # fmt: skip
        counts[name] = len(split.cosmo_id)
    return counts


@dataclass
class ControlsSettings:
    """Sizes and hyper-parameters of one controls run (every control uses the same).

    The field defaults are the default size (:data:`DEFAULT`, the CLI's training defaults on
    32 px maps); :data:`QUICK` sets its own.

    Attributes
    ----------
    n_cosmologies, n_perms, patch_size : int
        Data size (:class:`~sop_cosmo.cosmo.maths.planted.ControlSpec`).
    cnn_epochs, sop_epochs : int
        Training epochs of the backbone and of SOP.
    cnn_lr, sop_lr : float
        Peak learning rates.
    batch_size : int
        Training batch of both.
    cnn_options, sop_options : dict
        ``model_options`` of the two runs.
    n_boot : int
        Bootstrap resamples of the analysis and of the trained-vs-untrained gain.
    spec_options : dict
        Further :class:`~sop_cosmo.cosmo.maths.planted.ControlSpec` fields (e.g.
        ``corr_length``, ``tail``).
    sop_train : dict
        Further :class:`~sop_cosmo.cosmo.config.TrainConfig` fields of the SOP run (e.g.
        ``selector_epochs``, ``generator_lr_ratio``).
    train_seeds : int
        CNN + SOP trainings per control, on training seeds ``seed + 1000·k``; the analysis
        takes them as one ensemble, as the workflow does with ``train.seeds`` (CIs over test
        cosmologies × seeds, and a claim needs every seed to agree in sign).
    data_per_seed : bool
        Each further training seed k also trains on its own planted training and validation
        sets, drawn from the same spec with data seed ``seed + 1000·k``; every seed is tested
        on the first seed's test set. A model inherits quirks of its one training sample,
        which a shared sample would make every seed agree on.
    """

    n_cosmologies: int = 300
    n_perms: int = 4
    patch_size: int = 32
    cnn_epochs: int = TrainConfig.epochs
    sop_epochs: int = TrainConfig.epochs
    cnn_lr: float = TrainConfig.lr
    sop_lr: float = TrainConfig.lr
    batch_size: int = TrainConfig.batch_size
    cnn_options: dict[str, Any] = field(default_factory=dict)
    sop_options: dict[str, Any] = field(default_factory=dict)
    n_boot: int = 1000
    spec_options: dict[str, Any] = field(default_factory=dict)
    sop_train: dict[str, Any] = field(default_factory=dict)
    train_seeds: int = 3
    data_per_seed: bool = True

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict."""
        return json.loads(json.dumps(asdict(self)))


# The quick size keeps the small CNN and the SOP options it was measured with (a 4×4 grid of
# 6 px cells on 24 px maps; docs/controls.md): it is a smoke test of the chain that runs in
# under a minute, not the measurement of the defaults.
_CNN = {"widths": [16, 32], "kernel": 3, "hidden": [64, 32], "mask_prob": 0.5,
        "mask_keep": 0.2, "mask_patch": 6}  # fmt: skip
_SOP = {"attention_patch": 6, "n_groups": 10, "keep_fraction": 0.2, "selector_init": "random",
        "active_groups": None, "compete": False, "freeze_backbone": True}  # fmt: skip
_SOP_TRAIN = {"selector_epochs": 0, "generator_lr_ratio": 1.0}
#: Under a minute on one CPU core (tests, CI).
QUICK = ControlsSettings(
    n_cosmologies=150, n_perms=4, patch_size=24, cnn_epochs=15, sop_epochs=3, cnn_lr=2e-3,
    sop_lr=1e-3, batch_size=16, cnn_options=_CNN, sop_options=_SOP, sop_train=_SOP_TRAIN,
    train_seeds=1,
)  # fmt: skip
#: The CLI's defaults for both models and their training (no option is set here), on 32 px
#: maps, three training seeds; several minutes per control on two CPU cores.
DEFAULT = ControlsSettings()


def untrained_checkpoint(
    sop_checkpoint: str | os.PathLike, cnn_checkpoint: str | os.PathLike,
    out_path: str | os.PathLike,
) -> Path:  # fmt: skip
    """Write the *untrained* twin of a trained SOP checkpoint.

    Same backbone (the trained CNN ``cnn_checkpoint`` that SOP was trained around), same
    options, and the generator and selector exactly as :func:`~sop_cosmo.cosmo.stages.train.train`
    initialised them: the model is rebuilt after ``torch.manual_seed(config.seed)``, as the
    trainer does. The caller's RNG state is left untouched. Everything else (normalisation,
    names, config) is copied from the trained checkpoint, with ``epoch = step = 0`` and
    ``untrained = True``.
    """
    import torch

    from sop_cosmo.cosmo.contracts.checkpoint import load_checkpoint, save_checkpoint
    from sop_cosmo.cosmo.models import build_model, load_model

    ckpt = load_checkpoint(sop_checkpoint, expect_kind="sop", purpose="the untrained twin")
    cnn, _ = load_model(cnn_checkpoint, "cpu")  # builds inside fork_rng: no RNG drawn
    args = ckpt.model_args
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(ckpt.config["seed"])
        fresh = build_model(
            "sop", in_channels=args["in_channels"], patch_size=args["patch_size"],
            n_outputs=args["n_outputs"], n_features=args["n_features"],
            options=ckpt.config["model_options"], backbone=cnn,
        )  # fmt: skip
    state = {**ckpt.payload, "model_state": fresh.state_dict(), "epoch": 0, "step": 0,
             "untrained": True}  # fmt: skip
    return save_checkpoint(state, out_path)


def _check_train_seeds(settings: ControlsSettings) -> None:
    if not isinstance(settings.train_seeds, int) or settings.train_seeds < 1:
        raise ValueError(f"train_seeds: expected an integer ≥ 1, got {settings.train_seeds!r}")


def run_control(
    kind: str,
    out_dir: str | os.PathLike,
    settings: ControlsSettings,
    *,
    seed: int = ControlsConfig.seed,
    progress: bool = True,
) -> dict[str, Any]:
    """One control end to end: planted data, CNNs, SOPs, untrained twin, analyses, verdict.

    Writes under ``out_dir``: ``data/{train,val,test}.h5``; ``cnn/``, ``sop/`` (the first
    training seed's runs, with ``test_metrics.json``) and ``seed{k}/{cnn,sop}/`` for the
    further ``settings.train_seeds`` (with ``data_per_seed``, ``seed{k}/data/`` too);
    ``sop_untrained/model.pt`` (the first seed's twin);
    ``analysis/`` (every seed as one ensemble) and ``analysis_untrained/`` (the outputs of
    :func:`sop_cosmo.cosmo.stages.analyse.analyze`). The gain over the untrained twin pairs
    the first seed's groups with the twin's.

    Returns
    -------
    dict
        Spec, training seeds, test MSEs, both summaries, the paired gain, the checks and
        ``passed``.
    """
    from sop_cosmo.cosmo.stages.analyse import analyze
    from sop_cosmo.cosmo.stages.evaluate import evaluate
    from sop_cosmo.cosmo.stages.train import train

    out = Path(out_dir)
    t0 = time.perf_counter()
    spec = ControlSpec(
        kind=kind, n_cosmologies=settings.n_cosmologies, n_perms=settings.n_perms,
        patch_size=settings.patch_size, seed=seed, **settings.spec_options,
    )  # fmt: skip
    counts = write_control(spec, out / "data")
    data = {s: out / "data" / f"{s}.h5" for s in SPLITS}
    _check_train_seeds(settings)
    train_seeds = [seed + 1000 * k for k in range(settings.train_seeds)]
    cnns, sops = [], []
    for k, train_seed in enumerate(train_seeds):
        where = out if k == 0 else out / f"seed{k}"
        fit = data  # the splits this seed trains on; every seed is tested on data["test"]
        if k > 0 and settings.data_per_seed:
            write_control(replace(spec, seed=train_seed), where / "data")
            fit = {s: where / "data" / f"{s}.h5" for s in SPLITS}
        common = {"seed": train_seed, "device": "cpu", "checkpoint_every": 0, "patience": None,
                  "batch_size": settings.batch_size}  # fmt: skip
        cnn_cfg = TrainConfig(kind="cnn", epochs=settings.cnn_epochs, lr=settings.cnn_lr,
                              model_options=settings.cnn_options, **common)  # fmt: skip
        cnns.append(train(fit["train"], fit["val"], where / "cnn", cnn_cfg, progress=progress))
        sop_cfg = TrainConfig(
            kind="sop", epochs=settings.sop_epochs, lr=settings.sop_lr,
            model_options=settings.sop_options, backbone=str(cnns[-1]), **common,
            **settings.sop_train,
        )  # fmt: skip
        sops.append(train(fit["train"], fit["val"], where / "sop", sop_cfg, progress=progress))
    cnn, sop = cnns[0], sops[0]
    untrained = untrained_checkpoint(sop, cnn, out / "sop_untrained" / "model.pt")
    t_train = time.perf_counter() - t0

    def test_mse(ckpt: Path) -> dict[str, Any]:
        return evaluate(ckpt, data["test"], ckpt.parent / "test_metrics.json", device="cpu")

    mse = {name: test_mse(ckpt) for name, ckpt in
           (("cnn", cnn), ("sop", sop), ("sop_untrained", untrained))}  # fmt: skip
    later = {"cnn": [test_mse(c) for c in cnns[1:]], "sop": [test_mse(c) for c in sops[1:]]}
    # The planted maps are typed by the per-patch rule they were designed for (no σ_noise).
    kw = {"n_boot": settings.n_boot, "seed": seed, "device": "cpu", "progress": progress,
          "type_units": "patch"}  # fmt: skip
    summary = analyze(sop, data["test"], out / "analysis", ensemble=sops[1:], **kw)
    summary_u = analyze(untrained, data["test"], out / "analysis_untrained", figures=False, **kw)
    gain = paired_gain(out / "analysis" / "groups.h5", out / "analysis_untrained" / "groups.h5",
                       n_boot=settings.n_boot, seed=seed)  # fmt: skip
    verdict = judge(kind, summary, gain if planted_signs(kind) else None)
    return {
        "kind": kind,
        "spec": spec.to_dict(),
        "maps": counts,
        "train_seeds": train_seeds,
        "test_mse": {k: {"mse": v["mse"], "mse_mean": v["mse_mean"]} for k, v in mse.items()},
        "test_mse_per_seed": {
            k: [m["mse_mean"] for m in (mse[k], *later[k])] for k in ("cnn", "sop")
        },
        "differences": summary["differences"],
        "contributions": summary["contributions"],
        "group_type_rates": summary["group_type_rates"],
        "purity": summary["purity"],
        "skill": summary["skill"],
        "claims": summary["claims"],
        "difference_gates": {
            c["type"]: c["gates"] for c in summary["claim_checks"] if c["kind"] == "difference"
        },
        "untrained": {
            "differences": summary_u["differences"],
            "group_type_rates": summary_u["group_type_rates"],
        },
        "gain_over_untrained": gain,
        "analysis_dir": str(out / "analysis"),
        "seconds": {"train": round(t_train, 2), "total": round(time.perf_counter() - t0, 2)},
        **verdict,
    }


def run_controls(
    out_dir: str | os.PathLike,
    config: ControlsConfig | None = None,
    *,
    progress: bool = True,
    settings: ControlsSettings | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """Run every control in ``CONTROL_KINDS``; write ``out_dir/controls.json`` and
    ``out_dir/figures/controls.png``.

    Parameters
    ----------
    out_dir : path-like
        Output directory; the controls' own files go under ``positive/``, ``negative/`` and
        ``swapped/``.
    config : ControlsConfig, optional
        ``quick`` (use :data:`QUICK`, about a minute on one core, instead of :data:`DEFAULT`),
        ``seed`` (seeds the data, the training and the bootstraps) and ``threads`` (torch CPU
        threads for the run, restored afterwards; the models are tiny: on two shared cores one
        thread was 9× faster than two), and ``train_seeds`` (None: the settings' own, 3 at the
        default size and 1 with ``quick``). Default
        :class:`~sop_cosmo.cosmo.config.ControlsConfig`.
    progress : bool
        tqdm bars.
    settings : ControlsSettings, optional
        Overrides ``quick``.
    **overrides
        Fields of :class:`~sop_cosmo.cosmo.config.ControlsConfig` to replace, e.g. ``quick=True``.

    Returns
    -------
    dict
        What ``controls.json`` holds: ``{"positive": {..., "passed"}, "negative": {...},
        "swapped": {...}, "settings", "seed", "quick", "seconds"}``.
    """
    from sop_cosmo._threads import torch_threads  # torch only when the controls run
    from sop_cosmo.cosmo.figures import controls_figure

    cfg = resolve(ControlsConfig, config, overrides)
    quick, seed, threads = cfg.quick, cfg.seed, cfg.threads
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed: expected a non-negative integer, got {seed!r}")
    settings = settings or (QUICK if quick else DEFAULT)
    if cfg.train_seeds is not None:
        settings = replace(settings, train_seeds=cfg.train_seeds)
    _check_train_seeds(settings)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: exists and is not a directory; choose another path")
    if threads is not None and threads < 1:
        raise ValueError(f"threads: expected ≥ 1, got {threads}")
    t0 = time.perf_counter()
    result: dict[str, Any] = {}
    with torch_threads(threads) as used:
        for i, kind in enumerate(CONTROL_KINDS, start=1):
            result[kind] = run_control(kind, out / kind, settings, seed=seed, progress=progress)
            if progress:  # a line per control: each takes minutes at the default size
                verdict = "passed" if result[kind]["passed"] else "failed"
                progress_write(f"controls: {kind} {verdict} ({i}/{len(CONTROL_KINDS)}, "
                               f"{time.perf_counter() - t0:.0f} s)")  # fmt: skip
    result.update({
        "seed": seed, "quick": quick, "settings": settings.to_dict(),
        "torch_threads": used,
        "seconds": round(time.perf_counter() - t0, 2),
    })  # fmt: skip
    controls_figure(result, out / "figures" / "controls.png")
    with atomic_path(out / "controls.json") as tmp:
        tmp.write_text(json.dumps(result, indent=2) + "\n")
    return result
