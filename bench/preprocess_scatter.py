"""Scattered preprocessing: two chunk jobs at once against one job over the same maps.

    python bench/preprocess_scatter.py [--nside 256] [--cosmologies 8] [--perms 1]

Writes a grid of random maps in the CosmoGridV1 layout (the real compression, through the
contract's writer) and cuts it with DES-Y3 noise and 60′ smoothing into 66-pixel patches,
each job a separate `sop-cosmo preprocess` process with one thread (as the workflow's jobs):

- one job over every map;
- `--chunks 2 --chunk 0` and `--chunk 1` started together, then `sop-cosmo gather`.

Printed: the wall times, the parallel efficiency T(1 job) / (2 × T(2 jobs at once)) on the two
jobs alone and with the gather, and whether the gathered patches equal the single job's.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import healpy as hp
import numpy as np

from sop_cosmo.cosmo.contracts.cosmogrid import (
    cosmo_folder,
    map_filename,
    path_par,
    perm_folder,
    set_relpath,
    write_map,
    write_metainfo,
)
from sop_cosmo.cosmo.maths.cosmology import FIDUCIAL, PARAMETER_NAMES

CLI = str(Path(sys.executable).parent / "sop-cosmo")
FLAGS = ["--patch-size", "66", "--noise", "des-y3", "--smoothing-arcmin", "60", "--quiet"]


def write_grid(root: Path, n_cosmo: int, n_perms: int, nside: int) -> None:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(1, n_cosmo + 1):
        params = {**FIDUCIAL, "Om": 0.2 + 0.02 * i, "s8": 0.7 + 0.02 * i, "As": 2e-9}
        rows.append({**params, "path_par": path_par("grid", cosmo_folder(i))})
        for j in range(n_perms):
            kappa = 0.01 * rng.standard_normal((4, hp.nside2npix(nside))).astype(np.float32)
            folder = root / set_relpath("grid") / cosmo_folder(i) / perm_folder(j)
            write_map(folder / map_filename(), kappa, {"nside": nside})
    write_metainfo(root / "CosmoGrid" / "CosmoGridV1_metainfo.h5", rows, {},
                   fields=PARAMETER_NAMES)  # fmt: skip


def timed(*commands: list[str]) -> float:
    """Wall time of ``commands`` started together, until the last one ends."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    procs = [subprocess.Popen(c, env=env) for c in commands]
    if any(p.wait() != 0 for p in procs):
        raise SystemExit(f"a job failed: {commands}")
    return time.perf_counter() - t0


def same_patches(a: Path, b: Path) -> bool:
    for split in ("train", "val", "test"):
        with h5py.File(a / f"{split}.h5") as fa, h5py.File(b / f"{split}.h5") as fb:
            if sorted(fa) != sorted(fb):
                return False
            if not all(np.array_equal(fa[k][()], fb[k][()]) for k in fa):
                return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nside", type=int, default=256)
    parser.add_argument("--cosmologies", type=int, default=8)
    parser.add_argument("--perms", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root, out = Path(tmp) / "root", Path(tmp)
        write_grid(root, args.cosmologies, args.perms, args.nside)
        base = [CLI, "preprocess", "--root", str(root), *FLAGS]
        one = timed([*base, "--out", str(out / "one")])
        chunk = [[*base, "--out", str(out / f"c{i}"), "--chunks", "2", "--chunk", str(i)]
                 for i in (0, 1)]  # fmt: skip
        two = timed(*chunk)
        gather = timed([CLI, "gather", "--out", str(out / "two"), str(out / "c0"),
                        str(out / "c1"), "--quiet"])  # fmt: skip
        equal = same_patches(out / "one", out / "two")
    maps = args.cosmologies * args.perms
    print(f"{maps} maps of nside {args.nside}, 66-px patches, des-y3 noise, 60' smoothing; "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at the end")  # fmt: skip
    print(f"1 job: {one:.1f} s; 2 chunk jobs at once: {two:.1f} s; gather: {gather:.1f} s")
    print(f"parallel efficiency (2 jobs) = {one / (2 * two):.3f}; "
          f"with the gather = {one / (2 * (two + gather)):.3f}")  # fmt: skip
    print(f"gathered patches equal the single job's: {equal}")


if __name__ == "__main__":
    main()
