"""Make the trainer's real-noise file runs/h200/real.npz from the bundled GW190521 strain with h5py
alone (the lent GPU has no gwpy): strain (3, N) of H1, L1, V1, train_range [0, 5734] (16-s segments
whose windows end before the event) and val_range from gwviz.data.strain (the held-out windows 18-30 s).

    python docs/make_real_npz.py [OUT]      (default runs/h200/real.npz)
"""
import sys
from pathlib import Path

import h5py
import numpy as np

from gwviz.constants import DETECTORS, SAMPLE_RATE
from gwviz.paths import BUNDLED_DATA
from gwviz.data.strain import RealStrain, default_window_range, segment_start_range

out = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/h200/real.npz")
rows, starts = [], set()
for d in DETECTORS:
    with h5py.File(BUNDLED_DATA / "gwpy_format" / "GW190521_data" / f"{d}_data_32s.hdf5", "r") as f:
        ds = f["Strain"]  # gwpy's HDF5 layout: the series and its start x0 [s], step dx [s]
        if round(1 / float(ds.attrs["dx"])) != SAMPLE_RATE:
            raise ValueError(f"{d}: not {SAMPLE_RATE} Hz")
        rows.append(ds[...].astype(np.float64))
        starts.add(round(float(ds.attrs["x0"]) * SAMPLE_RATE))
if len(starts) != 1 or len({len(r) for r in rows}) != 1:
    raise ValueError("the bundled H1/L1/V1 files do not share one span")
real = RealStrain(np.stack(rows), starts.pop() / SAMPLE_RATE, SAMPLE_RATE, {})
val = segment_start_range(real, default_window_range(real))
out.parent.mkdir(parents=True, exist_ok=True)
np.savez(out, strain=real.strain, sample_rate=SAMPLE_RATE, train_range=[0, 5734], val_range=val)
print(f"{out}: strain {real.strain.shape}, val_range {val}")
