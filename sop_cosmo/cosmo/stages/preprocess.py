"""Stage ``preprocess``: full-sky maps to the patch files ``{train,val,test}.h5``.

For each map: optional shape noise and Gaussian smoothing on the sphere, then gnomonic patches
cut by gathering precomputed HEALPix pixel indices (:mod:`sop_cosmo.cosmo.maths.sky`), then an
append to the split's patch file (:class:`~sop_cosmo.cosmo.contracts.patchfile.PatchFileWriter`;
docs/contracts.md, "Patch file"). One map is in memory at a time.

Splits are by cosmology: all permutations of a cosmology land in the same split.

**Scattered preprocessing.** ``chunks`` cuts the cosmologies, in the order of the sorted map
list, into that many contiguous chunks; ``preprocess(..., chunk=i)`` cuts the maps of chunk i
only (one cluster job each), and :func:`gather` concatenates the chunks' files in chunk order
into the split files. The split and the noise of a map depend on the seed and the cosmology
(and perm) only, and the chunks are contiguous, so the gathered files hold the same rows in the
same order as one job over every map.

**Permuted labels** (``permute_labels``, the null of docs/analysis.md, "Nulls"): every patch
of a training cosmology carries the targets of another training cosmology
(:func:`~sop_cosmo.cosmo.maths.sky.label_permutation`, a derangement drawn from the seed over
every map, so the same for any chunking); validation and test keep their own targets. The
files record it in the attributes ``permute_labels`` and ``label_permutation``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import healpy as hp
import numpy as np

from sop_cosmo._progress import progress_bar
from sop_cosmo.cosmo.config import NOISE_MODELS, SPLITS, PreprocessConfig, resolve
from sop_cosmo.cosmo.contracts.cosmogrid import cosmo_id, find_maps, map_source, read_map
from sop_cosmo.cosmo.contracts.patchfile import PatchFileWriter
from sop_cosmo.cosmo.contracts.patchrows import PatchRows
from sop_cosmo.cosmo.maths.noise import reference_rows, sigma_noise
from sop_cosmo.cosmo.maths.sky import (
    add_shape_noise,
    label_permutation,
    patch_geometry,
    random_dihedral,
    smooth,
    split_by_cosmology,
)
from sop_cosmo.cosmo.maths.targets import check_targets, target_values

__all__ = ["CHUNK_ATTRS", "chunk_of", "gather", "preprocess"]

#: Per-row datasets the preprocess patch files carry besides the contract's.
_EXTRA = {"perm": "i8", "patch_index": "i8"}
#: File attributes of a chunk's files that :func:`gather` checks and drops.
CHUNK_ATTRS: tuple[str, ...] = ("chunk", "chunks")
# Rows per append when gathering (bounded memory whatever the split size).
_GATHER_ROWS = 4096


def chunk_of(ids: Sequence[int], chunks: int) -> dict[int, int]:
    """Chunk (0 … chunks − 1) of each cosmology id: the distinct ids, in order of first
    appearance, cut into ``chunks`` contiguous runs of near-equal length."""
    order = list(dict.fromkeys(int(i) for i in ids))
    if not 1 <= chunks <= len(order):
        raise ValueError(
            f"chunks: expected 1 … {len(order)} (one cosmology per chunk at most), got {chunks}"
        )
    return {c: k for k, part in enumerate(np.array_split(order, chunks)) for c in part.tolist()}


def _file_attrs(cfg: PreprocessConfig, geometry: Any, nside: int, source: str) -> dict[str, Any]:
    """The file attributes of every split file: the one place they are written (a chunk's
    files add :data:`CHUNK_ATTRS`; :func:`gather` carries every other attribute through)."""
    return {
        "pixel_arcmin": geometry.pixel_arcmin,
        "patch_size": cfg.patch_size,
        "nside": nside,
        "bins": [int(b) for b in cfg.bins],
        "smoothing_arcmin": float(cfg.smoothing_arcmin),
        "noise": cfg.noise,
        "source": source,
        "centres_nside": geometry.centres_nside,
        "a_ia": float(cfg.a_ia),
        "variant": cfg.variant,
        "seed": cfg.seed,
        "augment": cfg.augment,
        "permute_labels": cfg.permute_labels,
    }


def preprocess(
    root: str | Path,
    out_dir: str | Path,
    config: PreprocessConfig | None = None,
    *,
    chunk: int | None = None,
    progress: bool = True,
    **overrides: Any,
) -> dict[str, int]:
    """Cut every map under ``root`` (or those of one chunk) into patches and write
    ``{train,val,test}.h5``.

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
        :func:`~sop_cosmo.cosmo.maths.sky.patch_geometry`); ``params`` (the targets: metainfo
        fields, or derived ones such as S8, :mod:`~sop_cosmo.cosmo.maths.targets`);
        ``fractions`` (train/val/test fractions of the cosmologies); ``augment`` (a random
        rotation by a multiple of 90° and a random flip of each training patch: the
        sky is statistically isotropic and parity-invariant); ``a_ia`` (κ = kg + a_ia·ia);
        ``permute_labels`` (the permuted-label null: each training cosmology takes the
        targets of another, val and test keep theirs); ``variant``, ``sets``, ``metainfo``
        (passed to :func:`~sop_cosmo.cosmo.contracts.cosmogrid.find_maps`); ``chunks`` (see
        ``chunk``).
    chunk : int, optional
        Cut only the maps of chunk ``chunk`` (0-based) of ``config.chunks`` (:func:`chunk_of`);
        the files then carry the attributes ``chunk`` and ``chunks`` for :func:`gather`. The
        split by cosmology is still decided over every map. None: every map.
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
    records = find_maps(root, variant=cfg.variant, sets=cfg.sets, metainfo=cfg.metainfo)
    params = check_targets(cfg.params, list(records[0].params))  # fields or derived (S8)
    ids = [cosmo_id(r) for r in records]
    split_of = split_by_cosmology(ids, cfg.fractions, cfg.seed)
    chunk_index = chunk_of(ids, cfg.chunks)
    # Targets per cosmology, from every map (not only this chunk's): the permutation may give
    # a cosmology the targets of one that another chunk cuts.
    targets = {c: target_values(r.params, params) for r, c in zip(records, ids, strict=True)}
    source = label_permutation(split_of, cfg.seed) if cfg.permute_labels else {}
    if chunk is not None:
        if not 0 <= chunk < cfg.chunks:
            raise ValueError(
                f"chunk: expected 0 … {cfg.chunks - 1} (chunks={cfg.chunks}), got {chunk}"
            )
        todo = [(r, c) for r, c in zip(records, ids, strict=True) if chunk_index[c] == chunk]
    else:
        todo = list(zip(records, ids, strict=True))
    first = read_map(todo[0][0].path, bins=bins, a_ia=cfg.a_ia)
    nside = hp.npix2nside(first.shape[1])
    geometry = patch_geometry(nside, cfg.patch_size, cfg.pixel_arcmin, cfg.centres_nside)
    attrs = _file_attrs(cfg, geometry, nside, map_source(todo[0][0].path))
    if source:  # row 0: a training cosmology; row 1: the cosmology whose targets it carries
        attrs["label_permutation"] = np.array(sorted(source.items()), dtype=np.int64).T
    # σ per bin after smoothing, for ν = κ / σ_noise (the same in every chunk: docs/contracts.md)
    attrs["sigma_noise"] = sigma_noise(
        cfg.noise, nside, cfg.smoothing_arcmin, len(bins),
        reference=lambda: (
            geometry.cut(smooth(read_map(records[i].path, bins=bins, a_ia=cfg.a_ia),
                                cfg.smoothing_arcmin))
            for i in reference_rows([split_of[c] for c in ids])
        ),
    )  # fmt: skip
    if chunk is not None:
        attrs.update(chunk=chunk, chunks=cfg.chunks)
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
        desc = "preprocess" if chunk is None else f"preprocess chunk {chunk}/{cfg.chunks}"
        for record, cid in progress_bar(todo, desc=desc, disable=not progress):
            if record is todo[0][0]:
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
            values = targets[source.get(cid, cid)]
            files[split].append(
                patches, values, cid, perm=record.perm, patch_index=np.arange(len(patches))
            )
            counts[split] += len(patches)
    return counts


# ------------------------------------------------------------------------------------ gather


def _chunk_files(chunk_dirs: Sequence[str | Path]) -> list[dict[str, Path]]:
    """The chunks' split files, ordered by chunk index, after checking that every chunk of
    one run is there exactly once."""
    found: dict[int, Path] = {}
    total: set[int] = set()
    for d in map(Path, chunk_dirs):
        for split in SPLITS:
            if not (d / f"{split}.h5").is_file():
                raise FileNotFoundError(
                    f"{d / f'{split}.h5'}: missing; run `sop-cosmo preprocess --chunk I` "
                    "for this chunk first"
                )
        attrs = _attrs(d / f"{SPLITS[0]}.h5")
        if not all(a in attrs for a in CHUNK_ATTRS):
            raise ValueError(
                f"{d}: not the output of one chunk (no 'chunk' attribute); give the folders "
                "that `sop-cosmo preprocess --chunk I` wrote"
            )
        k = int(attrs["chunk"])
        if k in found:
            raise ValueError(f"chunk {k} given twice: {found[k]} and {d}")
        found[k], total = d, total | {int(attrs["chunks"])}
    if not found:
        raise ValueError("gather: no chunk folders given")
    if len(total) > 1:
        raise ValueError(f"the chunk folders come from runs with different chunks: {sorted(total)}")
    missing = sorted(set(range(total.pop())) - set(found))
    if missing:
        raise ValueError(
            f"chunk(s) {missing} missing (have {sorted(found)}); run `sop-cosmo preprocess "
            f"--chunk I` for them and give every chunk folder"
        )
    return [{s: found[k] / f"{s}.h5" for s in SPLITS} for k in sorted(found)]


def _attrs(path: Path) -> dict[str, Any]:
    # A chunk may hold no cosmology of a split: its file then has 0 rows.
    return PatchRows([path], allow_empty=True).attrs


def _without_chunk(attrs: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in attrs.items() if k not in CHUNK_ATTRS}


def gather(
    chunk_dirs: Sequence[str | Path], out_dir: str | Path, *, progress: bool = True
) -> dict[str, int]:
    """Concatenate the split files of every chunk, in chunk order, into ``out_dir``.

    Every chunk of one scattered run must be given exactly once, and their files must agree on
    every attribute except :data:`CHUNK_ATTRS` (which the output drops); the rest, the per-row
    datasets included, is carried through. Rows are copied in blocks (bounded memory) and
    the three files appear together (atomically) or not at all.

    Returns
    -------
    dict
        Number of patches written per split.
    """
    chunks = _chunk_files(chunk_dirs)
    want = _without_chunk(_attrs(chunks[0][SPLITS[0]]))
    for files in chunks:
        for path in files.values():
            attrs = _without_chunk(_attrs(path))
            diff = sorted(k for k in set(want) | set(attrs) if _differs(want.get(k), attrs.get(k)))
            if diff:
                raise ValueError(
                    f"{path}: attributes {diff} differ from {chunks[0][SPLITS[0]]}'s; the chunks "
                    "must come from one preprocess configuration"
                )
    counts = dict.fromkeys(SPLITS, 0)
    out_dir = Path(out_dir)
    with contextlib.ExitStack() as stack:
        for split in SPLITS:
            rows = PatchRows([c[split] for c in chunks], allow_empty=True)
            kappa = rows.datasets["kappa"][1]
            extra = {n: spec for n, spec in rows.datasets.items()
                     if n not in ("kappa", "params", "cosmo_id")}  # fmt: skip
            writer = stack.enter_context(PatchFileWriter(
                out_dir / f"{split}.h5", n_bins=kappa[0], patch_size=kappa[1],
                param_names=rows.param_names, attrs=want, extra=extra,
            ))  # fmt: skip
            bar = progress_bar(total=len(rows), desc=f"gather {split}", disable=not progress)
            for a, b in rows.blocks(_GATHER_ROWS):
                writer.append(
                    rows.read_range("kappa", a, b), rows.read_range("params", a, b),
                    rows.read_range("cosmo_id", a, b),
                    **{n: rows.read_range(n, a, b) for n in extra},
                )  # fmt: skip
                bar.update(b - a)
            bar.close()
            counts[split] = len(rows)
    return counts


def _differs(a: Any, b: Any) -> bool:
    return not np.array_equal(np.asarray(a, dtype=object), np.asarray(b, dtype=object))
