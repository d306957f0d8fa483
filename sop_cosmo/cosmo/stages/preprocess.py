"""Stage ``preprocess``: full-sky maps to the patch files ``{train,val,test}.h5``.

For each map: optional shape noise and Gaussian smoothing on the sphere, then gnomonic patches
cut by gathering precomputed HEALPix pixel indices (:mod:`sop_cosmo.cosmo.maths.sky`), then an
append to the split's patch file (:class:`~sop_cosmo.cosmo.contracts.patchfile.PatchFileWriter`;
docs/contracts.md, "Patch file"). One map is in memory at a time.

Splits are by cosmology: all permutations of a cosmology land in the same split.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import healpy as hp
import numpy as np
from tqdm import tqdm

from sop_cosmo.cosmo.config import NOISE_MODELS, SPLITS, PreprocessConfig, resolve
from sop_cosmo.cosmo.contracts.cosmogrid import cosmo_id, find_maps, map_source, read_map
from sop_cosmo.cosmo.contracts.patchfile import PatchFileWriter
from sop_cosmo.cosmo.maths.sky import (
    add_shape_noise,
    patch_geometry,
    random_dihedral,
    smooth,
    split_by_cosmology,
)

__all__ = ["preprocess"]

#: Per-row datasets the preprocess patch files carry besides the contract's.
_EXTRA = {"perm": "i8", "patch_index": "i8"}


def preprocess(
    root: str | Path,
    out_dir: str | Path,
    config: PreprocessConfig | None = None,
    *,
    progress: bool = True,
    **overrides: Any,
) -> dict[str, int]:
    """Cut every map under ``root`` into patches and write ``{train,val,test}.h5``.

    Parameters
    ----------
    root : str or Path
        Folder containing ``CosmoGrid/`` (real or simulated).
    out_dir : str or Path
        Output folder for the three split files.
    config : PreprocessConfig, optional
        The settings (default ``PreprocessConfig()``); the field docs say what each does. In
        short: ``patch_size`` pixels per side; ``noise`` (shape noise added on the sphere before
        smoothing); ``smoothing_arcmin`` (FWHM, 0 for none); ``bins`` (1-based); ``seed`` (the
        split, the noise, per map and independent of processing order, and augmentation);
        ``pixel_arcmin``, ``centres_nside`` (the geometry, see
        :func:`~sop_cosmo.cosmo.maths.sky.patch_geometry`); ``params`` (metainfo fields stored
        as targets); ``fractions`` (train/val/test fractions of the cosmologies); ``augment``
        (a random rotation by a multiple of 90° and a random flip of each training patch: the
        sky is statistically isotropic and parity-invariant); ``a_ia`` (κ = kg + a_ia·ia);
        ``variant``, ``sets``, ``metainfo`` (passed to
        :func:`~sop_cosmo.cosmo.contracts.cosmogrid.find_maps`).
    progress : bool
        Show a progress bar over maps.
    **overrides
        Fields of :class:`~sop_cosmo.cosmo.config.PreprocessConfig` that replace ``config``'s.

    Returns
    -------
    dict
        Number of patches written per split.
    """
    cfg = resolve(PreprocessConfig, config, overrides)
    if cfg.noise not in NOISE_MODELS:
        raise ValueError(f"noise: expected one of {tuple(NOISE_MODELS)}, got {cfg.noise!r}")
    if cfg.smoothing_arcmin < 0:
        raise ValueError(f"smoothing_arcmin: expected ≥ 0, got {cfg.smoothing_arcmin}")
    bins = [int(b) for b in cfg.bins]
    params = list(cfg.params)
    records = find_maps(root, variant=cfg.variant, sets=cfg.sets, metainfo=cfg.metainfo)
    missing = [p for p in params if p not in records[0].params]
    if missing:
        raise ValueError(
            f"params: {missing} not in the metainfo fields {sorted(records[0].params)}"
        )
    ids = [cosmo_id(r) for r in records]
    split_of = split_by_cosmology(ids, cfg.fractions, cfg.seed)
    first = read_map(records[0].path, bins=bins, a_ia=cfg.a_ia)
    nside = hp.npix2nside(first.shape[1])
    geometry = patch_geometry(nside, cfg.patch_size, cfg.pixel_arcmin, cfg.centres_nside)
    attrs = {
        "pixel_arcmin": geometry.pixel_arcmin,
        "patch_size": cfg.patch_size,
        "nside": nside,
        "bins": bins,
        "smoothing_arcmin": float(cfg.smoothing_arcmin),
        "noise": cfg.noise,
        "source": map_source(records[0].path),
        "centres_nside": geometry.centres_nside,
        "a_ia": float(cfg.a_ia),
        "variant": cfg.variant,
        "seed": cfg.seed,
        "augment": cfg.augment,
    }
    out_dir = Path(out_dir)
    counts = dict.fromkeys(SPLITS, 0)
    with contextlib.ExitStack() as stack:
        files = {}
        for split in SPLITS:
            writer = PatchFileWriter(
                out_dir / f"{split}.h5", n_bins=len(bins), patch_size=cfg.patch_size,
                param_names=params, attrs=attrs, extra=_EXTRA,
            )  # fmt: skip
            files[split] = stack.enter_context(writer)
        for record, cid in tqdm(
            list(zip(records, ids, strict=True)), desc="preprocess", disable=not progress
        ):
            if record is records[0]:
                maps = first
            else:
                maps = read_map(record.path, bins=bins, a_ia=cfg.a_ia)
            if maps.shape[1] != first.shape[1]:
                raise ValueError(f"{record.path}: nside differs from the first map's {nside}")
            rng = np.random.default_rng([cfg.seed, cid, record.perm])
            maps = smooth(add_shape_noise(maps, cfg.noise, rng, nside), cfg.smoothing_arcmin)
            patches = geometry.cut(maps)
            split = split_of[cid]
            if cfg.augment and split == SPLITS[0]:
                patches = random_dihedral(patches, rng)
            values = np.array([record.params[p] for p in params], dtype=np.float32)
            files[split].append(
                patches, values, cid, perm=record.perm, patch_index=np.arange(len(patches))
            )
            counts[split] += len(patches)
    return counts
