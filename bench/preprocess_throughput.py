"""Preprocessing throughput: the gather path against raw HDF5 reads and per-patch gnomview.

    python bench/preprocess_throughput.py [--nside 512] [--maps 3] [--patch-size 66]

All three run on the same maps, written in the CosmoGridV1 layout with the real compression
(gzip 4 + shuffle), in one run:

- raw: h5py read + decode of the maps' kg datasets, nothing else;
- gather: the preprocessing path (validated read, then one gather of precomputed pixel indices);
- naive: ``healpy.gnomview(..., return_projected_map=True)`` once per patch and bin, timed on a
  subset of patches and scaled per patch.

Printed: gather / raw throughput (target ≥ 0.8) and gather speed-up over naive, per patch.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import h5py
import healpy as hp
import numpy as np

from sop_cosmo.cosmo.contracts.cosmogrid import read_map
from sop_cosmo.cosmo.maths.sky import patch_geometry

BINS = (1, 2, 3, 4)


def write_maps(folder: Path, n_maps: int, nside: int) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    opts = {"compression": "gzip", "compression_opts": 4, "shuffle": True}
    for i in range(n_maps):
        path = folder / f"map{i}.h5"
        with h5py.File(path, "w") as f:
            for b in BINS:
                # Smooth-ish lognormal-like values compress like real κ (not like white noise).
                g = hp.smoothing(rng.standard_normal(hp.nside2npix(nside)), fwhm=0.005)
                kappa = (0.02 * (np.exp(g / (3 * g.std())) - 1)).astype("f4")
                f.create_dataset(f"kg/stage3_lensing{b}", data=kappa, **opts)
                f.create_dataset(f"ia/stage3_lensing{b}", data=np.zeros_like(kappa), **opts)
        paths.append(path)
    return paths


def raw_read(path: Path) -> np.ndarray:
    with h5py.File(path, "r") as f:
        return np.stack([f[f"kg/stage3_lensing{b}"][()] for b in BINS])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nside", type=int, default=512)
    parser.add_argument("--maps", type=int, default=3)
    parser.add_argument("--patch-size", type=int, default=66)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--naive-patches", type=int, default=24, help="patches timed for naive")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_maps(Path(tmp), args.maps, args.nside)
        t0 = time.perf_counter()
        geometry = patch_geometry(args.nside, args.patch_size)
        t_geometry = time.perf_counter() - t0
        raw_read(paths[0])  # warm the page cache for both paths alike

        # Alternate the two paths map by map, over several rounds, so drift hits both alike.
        raw_times, gather_times = [], []
        for _ in range(args.rounds):
            for p in paths:
                t0 = time.perf_counter()
                raw_read(p)
                raw_times.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                patches = geometry.cut(read_map(p, bins=BINS))
                gather_times.append(time.perf_counter() - t0)
        t_raw, t_gather = statistics.median(raw_times), statistics.median(gather_times)

        maps = read_map(paths[0], bins=BINS)
        n_naive = min(args.naive_patches, geometry.n_patches)
        t0 = time.perf_counter()
        for theta, phi in geometry.centres[:n_naive]:
            rot = (np.degrees(phi), 90.0 - np.degrees(theta))
            for m in maps:
                hp.gnomview(m, rot=rot, xsize=args.patch_size, reso=geometry.pixel_arcmin,
                            return_projected_map=True, no_plot=True)  # fmt: skip
        t_naive_patch = (time.perf_counter() - t0) / n_naive

    n = geometry.n_patches
    t_gather_patch = t_gather / n
    print(f"nside={args.nside} maps={args.maps} patch={args.patch_size}px "
          f"@ {geometry.pixel_arcmin:.2f}' patches/map={n} bins={len(BINS)}")  # fmt: skip
    print(f"geometry (once): {1e3 * t_geometry:.0f} ms; patches shape {patches.shape}")
    print(f"raw read+decode : {t_raw:.3f} s/map")
    print(f"gather path     : {t_gather:.3f} s/map (read+validate+gather)")
    print(f"naive gnomview  : {1e3 * t_naive_patch:.2f} ms/patch ({n_naive} patches timed)")
    print(f"gather / raw throughput = {t_raw / t_gather:.3f} (target >= 0.8)")
    print(f"gather speed-up over naive gnomview, per patch = {t_naive_patch / t_gather_patch:.0f}x")


if __name__ == "__main__":
    main()
