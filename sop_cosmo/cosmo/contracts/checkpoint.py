"""The checkpoint contract: one writer and one typed reader of ``RUN/model.pt`` and ``last.pt``.

A checkpoint is a ``torch.save`` dict that ``torch.load(weights_only=True)`` accepts, tagged
``"format": CHECKPOINT_FORMAT`` (docs/contracts.md, "Checkpoint"). Every checkpoint holds::

    format, kind, model_args, backbone_args, config, norm, param_names, data_attrs,
    version, git_sha, model_state

``model.pt`` (the best epoch) adds ``epoch``, ``step``, ``val_loss``, ``val_mse``; ``last.pt``
(the resumable state) adds ``optimizer_state``, ``scheduler_state``, ``rng_state``,
``progress``, ``fingerprint``, ``epoch``, ``step``. Other writers may add keys (the controls'
untrained twin adds ``untrained``); :attr:`Checkpoint.payload` keeps the whole dict.

:func:`load_checkpoint` refuses a missing file, a file ``torch.load`` cannot read, another
format and, when asked, another model kind; :func:`check_resumable` refuses a ``last.pt``
whose ``fingerprint`` differs from the run about to resume it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sop_cosmo._io import atomic_path

__all__ = [
    "CHECKPOINT_FORMAT",
    "Checkpoint",
    "check_resumable",
    "load_checkpoint",
    "save_checkpoint",
]

#: Format tag written into every checkpoint.
CHECKPOINT_FORMAT = "sop-cosmo-checkpoint/1"

_FIX = "give the model.pt (or last.pt) of a `sop-cosmo train` run"


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint: the typed fields, and the stored dict as :attr:`payload`."""

    path: Path
    #: "cnn", "sop" or "stats".
    kind: str
    #: kind, in_channels, patch_size, n_outputs, n_features, options.
    model_args: dict[str, Any]
    #: The sop backbone's ``model_args``; None for the other kinds.
    backbone_args: dict[str, Any] | None
    #: ``TrainConfig.to_dict()`` of the run.
    config: dict[str, Any]
    #: ``Normalization.to_dict()``: ``Normalization.from_dict(ckpt.norm)``.
    norm: dict[str, Any]
    param_names: list[str]
    data_attrs: dict[str, Any]
    version: str
    git_sha: str
    epoch: int | None
    step: int | None
    val_loss: float | None
    model_state: dict[str, Any]
    #: The whole dict as stored (resume state and any extra keys).
    payload: dict[str, Any]

    @property
    def options(self) -> dict[str, Any]:
        """The model's options, ``model_args["options"]``."""
        return self.model_args["options"]


def save_checkpoint(payload: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``payload`` to ``path`` atomically, tagged with :data:`CHECKPOINT_FORMAT`.

    A payload without a ``"format"`` key gets it as its first key; one with a foreign tag is
    refused (a ValueError).
    """
    fmt = payload.get("format", CHECKPOINT_FORMAT)
    if fmt != CHECKPOINT_FORMAT:
        raise ValueError(f"format: expected {CHECKPOINT_FORMAT!r}, got {fmt!r}")
    obj = payload if "format" in payload else {"format": CHECKPOINT_FORMAT, **payload}
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return path


def load_checkpoint(
    path: str | os.PathLike, *, expect_kind: str | None = None, purpose: str = "this command"
) -> Checkpoint:
    """Read a checkpoint on the CPU and check its format (and its kind, when ``expect_kind``).

    Raises
    ------
    FileNotFoundError
        When ``path`` is not a file.
    ValueError
        On a file that is not a sop-cosmo checkpoint (not a torch file, or another format),
        or one that holds another model kind than ``expect_kind``; the message names the file
        and what to give instead (``purpose`` says who needs it).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint: {path}: no such checkpoint; {_FIX}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch.load raises assorted unpickling errors on a foreign file
        raise ValueError(
            f"checkpoint: {path}: not a sop-cosmo checkpoint (torch.load cannot read it: "
            f"{type(err).__name__}); {_FIX}"
        ) from err
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(
            f"checkpoint: {path}: not a sop-cosmo checkpoint (expected {CHECKPOINT_FORMAT}); {_FIX}"
        )
    try:
        model_args = payload["model_args"]
        kind = model_args["kind"]
        ckpt = Checkpoint(
            path=path,
            kind=kind,
            model_args=model_args,
            backbone_args=payload.get("backbone_args"),
            config=payload["config"],
            norm=payload["norm"],
            param_names=list(payload["param_names"]),
            data_attrs=payload.get("data_attrs", {}),
            version=payload.get("version", "unknown"),
            git_sha=payload.get("git_sha", "unknown"),
            epoch=payload.get("epoch"),
            step=payload.get("step"),
            val_loss=payload.get("val_loss"),
            model_state=payload["model_state"],
            payload=payload,
        )
    except (KeyError, TypeError) as err:
        raise ValueError(
            f"checkpoint: {path}: incomplete checkpoint (missing {err}); {_FIX}"
        ) from err
    if expect_kind is not None and kind != expect_kind:
        raise ValueError(
            f"checkpoint: {path} holds a {kind!r} model, not a {expect_kind} checkpoint; "
            f"{purpose} needs a {expect_kind} model: give the model.pt of a "
            f"`sop-cosmo train --model {expect_kind}` run"
        )
    return ckpt


def check_resumable(
    path: str | os.PathLike, saved: dict[str, Any], current: dict[str, Any]
) -> None:
    """Refuse to resume ``path`` (a ``last.pt``) when its fingerprint ``saved`` differs from the
    ``current`` run's: the ValueError lists every differing key with its old and new value."""
    old, new = _flatten(saved), _flatten(current)
    diffs = sorted(k for k in old.keys() | new.keys() if old.get(k, "<absent>") != new.get(k))
    if diffs:
        lines = [
            f"  {k}: {_short(old.get(k, '<absent>'))} -> {_short(new.get(k, '<absent>'))}"
            for k in diffs[:20]
        ]
        more = f"\n  ... and {len(diffs) - 20} more" if len(diffs) > 20 else ""
        raise ValueError(
            f"{path}: cannot resume, the checkpoint was written with a different setup "
            f"(differing: {', '.join(diffs[:20])}):\n" + "\n".join(lines) + more + "\n"
            f"Delete {path} to start over, or use another --out."
        )


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in d.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
