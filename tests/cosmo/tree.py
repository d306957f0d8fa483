"""Hand-built tiny CosmoGridV1 trees in the real layout, for reader and preprocessing tests,
and tiny patch files (written by the one patch-file writer) for the stages after them."""

from pathlib import Path

import h5py
import numpy as np

from sop_cosmo.cosmo.config import PARAM_NAMES
from sop_cosmo.cosmo.contracts.patchfile import write_patch_file

#: Nominal file attributes of a hand-built patch file; ``patch_size`` and ``bins`` follow the
#: shape of its κ.
PATCH_ATTRS = {
    "pixel_arcmin": 6.87,
    "nside": 64,
    "smoothing_arcmin": 0.0,
    "noise": "none",
    "source": "simulated",
}

FIELDS = ("Om", "s8", "H0", "Ob", "ns", "w0", "As")


def write_metainfo(root, cosmologies, set_name="grid"):
    """cosmologies: {folder name: {field: value}}."""
    dtype = [(n, "f8") for n in FIELDS] + [("path_par", "S64")]
    rows = np.zeros(len(cosmologies), dtype=dtype)
    for i, (name, params) in enumerate(cosmologies.items()):
        for n in FIELDS:
            rows[i][n] = params.get(n, 0.0)
        rows[i]["path_par"] = f"CosmoGrid/raw/{set_name}/{name}".encode()
    path = Path(root) / "CosmoGrid" / "CosmoGridV1_metainfo.h5"
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "a") as f:
        f.create_dataset(f"parameters/{set_name}", data=rows)
    return path


def write_map(path, maps, *, layout="v1", ia=None):
    """maps: (n_bins, npix) written as kg/stage3_lensing{1..n} (or map/kg/... for v1.1)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = "" if layout == "v1" else "map/"
    with h5py.File(path, "w") as f:
        for b, m in enumerate(maps, start=1):
            opts = {"compression": "gzip", "compression_opts": 4, "shuffle": True}
            f.create_dataset(f"{prefix}kg/stage3_lensing{b}", data=m.astype("f4"), **opts)
            ia_map = np.zeros_like(m) if ia is None else ia[b - 1]
            f.create_dataset(f"{prefix}ia/stage3_lensing{b}", data=ia_map.astype("f4"), **opts)
    return path


def make_tree(root, n_cosmo=3, n_perms=2, nside=8, n_bins=4, layout="v1", seed=0,
              variant="nobaryons"):  # fmt: skip
    """A grid tree with random maps; returns {cosmo folder: params}."""
    rng = np.random.default_rng(seed)
    cosmologies = {}
    for i in range(1, n_cosmo + 1):
        name = f"cosmo_{i:06d}"
        cosmologies[name] = {"Om": 0.2 + 0.05 * i, "s8": 0.7 + 0.05 * i, "H0": 67.36,
                             "Ob": 0.0493, "ns": 0.9649, "w0": -1.0, "As": 2e-9}  # fmt: skip
        for p in range(n_perms):
            maps = 0.01 * rng.standard_normal((n_bins, 12 * nside * nside))
            folder = Path(root) / "CosmoGrid/stage3_forecast/grid" / name / f"perm_{p:04d}"
            write_map(folder / f"projected_probes_maps_{variant}512.h5", maps, layout=layout)
    write_metainfo(root, cosmologies)
    return cosmologies


def write_patches(path, kappa, params, cosmo_id, *, names=PARAM_NAMES, **attrs):
    """A patch file of κ (N, C, H, W), params (N, P) and cosmo_id (N,) with the nominal
    :data:`PATCH_ATTRS`, ``patch_size = W``, ``bins = [1..C]``, overridden by ``attrs``."""
    kappa = np.asarray(kappa)
    full = {
        **PATCH_ATTRS,
        "patch_size": kappa.shape[-1],
        "bins": list(range(1, kappa.shape[1] + 1)),
        **attrs,
    }
    return write_patch_file(
        path, kappa=kappa, params=params, cosmo_id=cosmo_id, param_names=list(names), attrs=full
    )
