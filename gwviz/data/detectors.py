"""Antenna patterns and arrival-time delays of H1, L1, V1 as batched torch ops.

Follows LAL's ``XLALComputeDetAMResponse`` and ``XLALTimeDelayFromEarthCenter`` (detector response
tensors and locations come from ``lal.CachedDetectors``); written in torch so that a batch of
sky positions projects on the GPU during training. Tests check both against pycbc's ``Detector``.
"""
from __future__ import annotations

import math
from functools import lru_cache

import lal
import numpy as np
import torch

from ..constants import DETECTORS


@lru_cache(maxsize=None)
def _detector_arrays(detectors: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    by_prefix = {d.frDetector.prefix: d for d in lal.CachedDetectors}
    missing = [d for d in detectors if d not in by_prefix]
    if missing:
        raise ValueError(f"unknown detectors {missing}; LAL knows {sorted(by_prefix)}")
    resp = np.stack([np.asarray(by_prefix[d].response, dtype=np.float64) for d in detectors])
    loc = np.stack([np.asarray(by_prefix[d].location, dtype=np.float64) for d in detectors])
    return resp, loc


def detector_geometry(detectors: tuple[str, ...] = DETECTORS, device=None, dtype=torch.float64):
    """Response tensors (D, 3, 3) and Earth-fixed locations (D, 3) [m]."""
    resp, loc = _detector_arrays(tuple(detectors))
    return (torch.as_tensor(resp, device=device, dtype=dtype), torch.as_tensor(loc, device=device, dtype=dtype))


def gmst(gps: float | np.ndarray) -> np.ndarray:
    """Greenwich mean sidereal time [rad] at GPS time(s) [s]."""
    return np.vectorize(lambda t: lal.GreenwichMeanSiderealTime(lal.LIGOTimeGPS(float(t))))(gps)


def antenna_patterns(ra: torch.Tensor, dec: torch.Tensor, psi: torch.Tensor, gmst_rad: torch.Tensor,
                     detectors: tuple[str, ...] = DETECTORS) -> tuple[torch.Tensor, torch.Tensor]:
    """F+ and F× of each detector.

    Args: ra, dec, psi [rad] and gmst [rad], each shape (B,).
    Returns: (fp, fc), each (B, D).
    """
    resp, _ = detector_geometry(detectors, ra.device, ra.dtype)
    gha = gmst_rad - ra
    cg, sg, cd, sd, cp, sp = gha.cos(), gha.sin(), dec.cos(), dec.sin(), psi.cos(), psi.sin()
    x = torch.stack([-cp * sg - sp * cg * sd, -cp * cg + sp * sg * sd, sp * cd], -1)  # (B, 3)
    y = torch.stack([sp * sg - cp * cg * sd, sp * cg + cp * sg * sd, cp * cd], -1)
    fp = torch.einsum("bi,dij,bj->bd", x, resp, x) - torch.einsum("bi,dij,bj->bd", y, resp, y)
    fc = torch.einsum("bi,dij,bj->bd", x, resp, y) + torch.einsum("bi,dij,bj->bd", y, resp, x)
    return fp, fc


def time_delays(ra: torch.Tensor, dec: torch.Tensor, gmst_rad: torch.Tensor,
                detectors: tuple[str, ...] = DETECTORS) -> torch.Tensor:
    """Arrival time at each detector minus arrival time at the geocentre [s], shape (B, D)."""
    _, loc = detector_geometry(detectors, ra.device, ra.dtype)
    phi = ra - gmst_rad
    n = torch.stack([dec.cos() * phi.cos(), dec.cos() * phi.sin(), dec.sin()], -1)  # (B, 3) towards source
    return -(n @ loc.T) / lal.C_SI


def uniform_gmst(n: int, generator: torch.Generator | None = None, device=None, dtype=torch.float64) -> torch.Tensor:
    """Uniform GMST [rad]: for sky-isotropic sources the time of day only rotates the sky."""
    return torch.rand(n, generator=generator, device=device, dtype=dtype) * (2 * math.pi)
