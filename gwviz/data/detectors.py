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
    """Response tensors and Earth-fixed locations of detectors, from ``lal.CachedDetectors``.

    Parameters
    ----------
    detectors : tuple of str, optional
        Detector prefixes. Default ``DETECTORS`` (H1, L1, V1).
    device : torch.device or str, optional
        Device of the tensors. Default None (the CPU).
    dtype : torch.dtype, optional
        Default torch.float64.

    Returns
    -------
    resp : (D, 3, 3) tensor
        Response tensors (dimensionless).
    loc : (D, 3) tensor
        Locations [m].
        Both are cached per (detectors, device, dtype) and shared between calls: read them, never write.

    Raises
    ------
    ValueError
        A detector LAL does not know.
    """
    return _geometry_on(tuple(detectors), torch.device(device or "cpu"), dtype)


@lru_cache(maxsize=64)
def _geometry_on(detectors: tuple[str, ...], device: torch.device, dtype: torch.dtype):
    # Cached per device: a copy from host memory waits for the device's queued work, which would stall
    # the trainer's batches made on a side stream. The tensors are shared: callers only read them.
    resp, loc = _detector_arrays(detectors)
    return (torch.as_tensor(resp, device=device, dtype=dtype), torch.as_tensor(loc, device=device, dtype=dtype))


def gmst(gps: float | np.ndarray) -> np.ndarray:
    """Greenwich mean sidereal time at GPS time(s).

    Parameters
    ----------
    gps : float or ndarray
        GPS time(s) [s].

    Returns
    -------
    ndarray
        GMST [rad], the shape of ``gps`` (0-d for a scalar).
    """
    return np.vectorize(lambda t: lal.GreenwichMeanSiderealTime(lal.LIGOTimeGPS(float(t))))(gps)


def antenna_patterns(ra: torch.Tensor, dec: torch.Tensor, psi: torch.Tensor, gmst_rad: torch.Tensor,
                     detectors: tuple[str, ...] = DETECTORS) -> tuple[torch.Tensor, torch.Tensor]:
    """F+ and F× of each detector (LAL's ``XLALComputeDetAMResponse``, batched).

    Parameters
    ----------
    ra, dec, psi : (B,) tensor
        Right ascension, declination and polarisation angle [rad].
    gmst_rad : (B,) tensor
        Greenwich mean sidereal time [rad].
    detectors : tuple of str, optional
        Default ``DETECTORS`` (H1, L1, V1).

    Returns
    -------
    fp : (B, D) tensor
        F+ (dimensionless), on the device and dtype of ``ra``.
    fc : (B, D) tensor
        F×.

    Raises
    ------
    ValueError
        A detector LAL does not know.
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
    """Arrival time at each detector minus arrival time at the geocentre.

    Parameters
    ----------
    ra, dec : (B,) tensor
        Right ascension and declination [rad].
    gmst_rad : (B,) tensor
        Greenwich mean sidereal time [rad].
    detectors : tuple of str, optional
        Default ``DETECTORS`` (H1, L1, V1).

    Returns
    -------
    (B, D) tensor
        Delays [s] (positive: later than at the geocentre).

    Raises
    ------
    ValueError
        A detector LAL does not know.
    """
    _, loc = detector_geometry(detectors, ra.device, ra.dtype)
    phi = ra - gmst_rad
    n = torch.stack([dec.cos() * phi.cos(), dec.cos() * phi.sin(), dec.sin()], -1)  # (B, 3) towards source
    return -(n @ loc.T) / lal.C_SI


def uniform_gmst(n: int, generator: torch.Generator | None = None, device=None, dtype=torch.float64) -> torch.Tensor:
    """Uniform GMST in [0, 2π): for sky-isotropic sources the time of day only rotates the sky.

    Parameters
    ----------
    n : int
        Number of draws.
    generator : torch.Generator or None, optional
        Random source. Default None (torch's global one).
    device : torch.device or str, optional
        Default None (the CPU).
    dtype : torch.dtype, optional
        Default torch.float64.

    Returns
    -------
    (n,) tensor
        GMST [rad].
    """
    return torch.rand(n, generator=generator, device=device, dtype=dtype) * (2 * math.pi)
