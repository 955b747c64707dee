"""The paper's data: what a (3, 16384) input window is made of, and the bundled real strain.

:mod:`~gwviz.data.params` (classes, mass ranges [M☉], isotropic draws), :mod:`~gwviz.data.waveforms`
(LAL polarisations), :mod:`~gwviz.data.detectors` (antenna patterns, delays), :mod:`~gwviz.data.psd` and
:mod:`~gwviz.data.whiten` (Welch PSD, whitening), :mod:`~gwviz.data.noise` (noise sources, one factory),
:mod:`~gwviz.data.strain` (reading real strain), :mod:`~gwviz.data.checks` (the checks every strain
passes), :mod:`~gwviz.data.synth` (the one synthesis path), :mod:`~gwviz.data.batch` (the trainer's
on-the-fly batches) and :mod:`~gwviz.data.dataset` (``python -m gwviz.data.dataset``: HDF5 splits). ``o3/`` holds the two GWOSC example events (CC BY 4.0,
attribution in ``o3/README.md``).
"""
