"""The seed experiment: train SOP on the monomial and binomial and score its groups exactly.

For each polynomial p over d binary features we train a :class:`~sop_cosmo.core.SumOfParts`
around a small MLP, explain the all-ones input, and score the explanation with the exact grouped
insertion/deletion error of :mod:`sop_cosmo.theory.lp` (groups = the SOP masks at x = 1,
scores α_g = w_g · y_g). That error sits next to the best any per-feature attribution can do.

Choices, and why:

- The MLP is trained jointly with SOP (``freeze_backbone=False``). With sparsemax weights
  summing to one, zero error on the binomial needs group outputs of 2·term (w = 1/2 each), which
  a backbone trained on p alone never produces.
- Unit features are the feature's identity only (``value_features=False``). With the value in
  them, masks can encode the label through which units they hide, since the masked value 0 is
  also a legal input; we saw training MSE reach 0 with meaningless groups that way.
- The keep fraction is the largest term's share of d: SOP must still find *which* features.
- Three selectors are trained: the anchor's learned sparsemax selector on raw scores
  ("learned"); the budget selector, the package's default rule, which standardises the
  scores over the groups and picks the sparsemax temperature that keeps exactly as many groups
  as p has terms ("budget": 2 for the binomial; the monomial's groups all tie); and a uniform one
  (``group_sel_scale = 0``). The learned selectors see every group's pooled features, so their
  weights can carry information across groups; the uniform one cannot, which isolates whether
  the generator alone finds the product terms.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from sop_cosmo._io import atomic_path
from sop_cosmo._progress import progress_bar
from sop_cosmo._threads import torch_threads
from sop_cosmo.core import SOPConfig, SumOfParts, VectorBackbone

from .data import all_ones, sample_inputs
from .lp import KINDS, grouped_error, oracle_groups, per_feature_optimum
from .polynomials import Polynomial, polynomial_by_name

__all__ = [
    "TheoryConfig",
    "TheoryRunConfig",
    "TrainedExplanation",
    "plot_table",
    "run_theory",
    "train_sop",
]

SELECTORS = ("learned", "budget", "uniform")
CSV_COLUMNS = (
    "function",
    "kind",
    "d",
    "per_feature_error",
    "per_feature_total_error",
    "oracle_grouped_error",
    "grouped_error",
    "grouped_total_error",
    "grouped_error_budget_selector",
    "grouped_error_uniform_selector",
    "sop_test_mse",
    "sop_test_mse_budget_selector",
    "sop_test_mse_uniform_selector",
    "sop_groups_match_terms",
    "sop_groups_match_terms_budget_selector",
    "sop_groups_match_terms_uniform_selector",
)


@dataclass
class TheoryConfig:
    """Training settings of the seed experiment.

    Attributes
    ----------
    n_groups : int
        Groups G of the SOP.
    steps, batch_size : int
        Adam steps and their batch size.
    lr : float
        Adam learning rate.
    hidden : int
        Width of the two-layer MLP backbone.
    n_train, n_test : int
        Sampled training and test inputs.
    selector : {"learned", "budget", "uniform"}
        Sparsemax on raw scores; sparsemax at the temperature that keeps as many groups as the
        polynomial has terms; or uniform weights (selector scale 0).
    mask_mode : {"ste", "anchor"}
        Gradient path to the masks (see :mod:`sop_cosmo.core.generator`).
    restarts : int
        Independent fits; the one with the lowest validation MSE is kept.
    seed : int
        Seed for torch and numpy.
    """

    n_groups: int = 4
    steps: int = 1500
    batch_size: int = 256
    lr: float = 3e-3
    hidden: int = 64
    n_train: int = 8192
    n_test: int = 2048
    selector: str = "learned"
    mask_mode: str = "ste"
    restarts: int = 1
    seed: int = 0


@dataclass(frozen=True)
class TheoryRunConfig:
    """``sop-cosmo theory``: the table's size and the SOP fits behind it.

    The training defaults are :class:`TheoryConfig`'s; ``metadata["help"]`` feeds the CLI.
    """

    max_d: int = field(default=12, metadata={"help": "largest number of binary features d"})
    steps: int = field(default=TheoryConfig.steps, metadata={"help": "SOP steps per fit"})
    groups: int = field(default=TheoryConfig.n_groups, metadata={"help": "SOP groups G"})
    restarts: int = field(
        default=TheoryConfig.restarts, metadata={"help": "fits per cell; lowest val MSE kept"}
    )
    seed: int = field(default=TheoryConfig.seed, metadata={"help": "seed of torch and numpy"})

    def training(self) -> TheoryConfig:
        """The :class:`TheoryConfig` of each fit."""
        return TheoryConfig(
            n_groups=self.groups, steps=self.steps, restarts=self.restarts, seed=self.seed
        )


@dataclass
class TrainedExplanation:
    """A trained SOP's explanation of x = 1 and its accuracy."""

    groups: np.ndarray  # (G, d) bool
    alpha: np.ndarray  # (G,) contributions w·y
    test_mse: float

    def active_groups(self, tol: float = 1e-3) -> set[tuple[int, ...]]:
        """Distinct groups with a contribution above ``tol``."""
        return {
            tuple(np.flatnonzero(g))
            for g, a in zip(self.groups, self.alpha, strict=True)
            if abs(a) > tol
        }


def train_sop(poly: Polynomial, config: TheoryConfig) -> TrainedExplanation:
    """Train an SOP on ``poly`` and explain the all-ones input.

    With ``config.restarts > 1``, the fit with the lowest validation MSE (a fresh sample, not
    the test set) is kept.
    """
    if config.selector not in SELECTORS:
        raise ValueError(f"selector: expected one of {SELECTORS}, got {config.selector!r}")
    if config.restarts < 1:
        raise ValueError(f"restarts: expected a positive integer, got {config.restarts}")
    rng = np.random.default_rng(config.seed)
    x_val, y_val = (torch.from_numpy(a) for a in sample_inputs(poly, config.n_test, rng))
    x_test, y_test = (torch.from_numpy(a) for a in sample_inputs(poly, config.n_test, rng))
    fits = [_fit(poly, config, config.seed + 1000 * r) for r in range(config.restarts)]
    model = min(fits, key=lambda m: _mse(m, x_val, y_val))
    with torch.no_grad():
        out = model(torch.from_numpy(all_ones(poly.d)))
    return TrainedExplanation(
        groups=out.masks[0].numpy() > 0.5,
        alpha=out.contributions[0, :, 0].double().numpy(),
        test_mse=_mse(model, x_test, y_test),
    )


def _fit(poly: Polynomial, config: TheoryConfig, seed: int) -> SumOfParts:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed + 1)
    d, h = poly.d, config.hidden
    body = nn.Sequential(nn.Linear(d, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU())
    backbone = VectorBackbone(
        body, nn.Linear(h, 1), n_features=d, n_outputs=1, pooled_dim=h, value_features=False
    )
    sop_config = SOPConfig(
        n_groups=config.n_groups,
        keep_fraction=poly.max_term_size / d,
        n_heads=1,
        mask_mode=config.mask_mode,
        freeze_backbone=False,
        selector_init="random",
        # learned: the anchor's raw-score selector; uniform: its scale 0 (every group 1/G, the
        # control); budget: the default rule, which keeps exactly as many groups as p has terms.
        group_sel_scale=0.0 if config.selector == "uniform" else 1.0,
        active_groups=len(poly.terms) if config.selector == "budget" else None,
    )
    model = SumOfParts(backbone, sop_config)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    x, y = (torch.from_numpy(a) for a in sample_inputs(poly, config.n_train, rng))
    for _ in range(config.steps):
        idx = torch.randint(0, len(x), (config.batch_size,))
        loss = ((model(x[idx]).prediction[:, 0] - y[idx]) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def _mse(model: SumOfParts, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return ((model(x).prediction[:, 0] - y) ** 2).mean().item()


def run_theory(
    max_d: int,
    out_dir: str | Path,
    config: TheoryConfig | None = None,
    *,
    functions: tuple[str, ...] = ("monomial", "binomial"),
    progress: bool = True,
) -> list[dict]:
    """Fill the error table for d = 1..max_d, write ``theory.csv`` and ``theory.png``.

    Returns
    -------
    list of dict
        One row per (function, kind, d), with the columns of ``CSV_COLUMNS``.
    """
    if not 1 <= max_d <= 16:
        raise ValueError(f"max_d: expected 1..16 (2**d subsets are enumerated), got {max_d}")
    config = config or TheoryConfig()
    jobs = [(f, d) for f in functions for d in range(2 if f == "binomial" else 1, max_d + 1)]
    rows = []
    with torch_threads(1):  # tiny models: threading overhead dominates
        for name, d in progress_bar(jobs, desc="theory", disable=not progress):
            poly = polynomial_by_name(name, d)
            fits = {s: train_sop(poly, replace(config, selector=s)) for s in SELECTORS}
            for kind in KINDS:
                rows.append(_row(poly, name, kind, fits))
    out = Path(out_dir)
    with atomic_path(out / "theory.csv") as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    plot_table(rows, out / "theory.png")
    with atomic_path(out / "theory_config.json") as tmp:
        tmp.write_text(_json(asdict(config)))
    return rows


def _row(poly: Polynomial, name: str, kind: str, fits: dict[str, TrainedExplanation]) -> dict:
    terms = {tuple(t) for t in poly.terms}
    row = {
        "function": name,
        "kind": kind,
        "d": poly.d,
        "per_feature_error": per_feature_optimum(poly, kind=kind, objective="worst").value,
        "per_feature_total_error": per_feature_optimum(poly, kind=kind, objective="total").value,
        "oracle_grouped_error": grouped_error(poly, *oracle_groups(poly), kind=kind).worst,
    }
    for selector, fit in fits.items():
        # the learned selector's columns carry no suffix (the table's first SOP column)
        suffix = "" if selector == "learned" else f"_{selector}_selector"
        err = grouped_error(poly, fit.groups, fit.alpha, kind=kind)
        row[f"grouped_error{suffix}"] = err.worst
        if selector == "learned":
            row["grouped_total_error"] = err.total
        row[f"sop_test_mse{suffix}"] = fit.test_mse
        row[f"sop_groups_match_terms{suffix}"] = fit.active_groups() == terms
    return row


def plot_table(rows: list[dict], path: str | Path, floor: float = 1e-4) -> None:
    """Error versus d on a log scale, one panel per kind; zeros are drawn at ``floor``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6), sharey=True)
    series = [
        ("per_feature_error", "per-feature optimum (LP)", "-", "o"),
        ("grouped_error", "SOP, learned selector", "--", "s"),
        ("grouped_error_budget_selector", "SOP, budget selector", "-.", "D"),
        ("grouped_error_uniform_selector", "SOP, uniform selector", ":", "^"),
    ]
    colours = {"monomial": "tab:blue", "binomial": "tab:red"}
    for ax, kind in zip(axes, KINDS, strict=True):
        for function, colour in colours.items():
            sel = [r for r in rows if r["kind"] == kind and r["function"] == function]
            if not sel:
                continue
            d = [r["d"] for r in sel]
            for key, label, style, marker in series:
                y = [max(float(r[key]), floor) for r in sel]
                ax.plot(d, y, style, marker=marker, color=colour, label=f"{function}: {label}")
        ax.set_yscale("log")
        ax.set_xlabel("d (binary features)")
        ax.set_title(f"worst-case {kind} error")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel(f"error (values < {floor:g} drawn at {floor:g})")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.14, 1, 1))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def _json(obj: dict) -> str:
    return json.dumps(obj, indent=2, sort_keys=True) + "\n"
