"""Matched-filter baseline (issue 7): a non-spinning template bank per class, filtered against the
very whitened windows the CNN sees, and compared with the CNN.

Choices (docs/baseline.md has the numbers):

* Data: the whitened (3, 16384) window of :func:`gwviz.data.synth.make_sample`, zero-padded, so the
  filter sees exactly the 4 s the CNN sees. Whitened noise is white with unit variance above
  15 Hz, so the optimal template is the raw template passed through the *same* whitening filter
  (:func:`gwviz.data.whiten.whitening_filter` of the segment's median-Welch PSD). The PSD is estimated
  on the noise-only segment we drew (make_sample does not return the raw segment with the signal
  in it; a signal barely moves the median of 31 periodograms).
* Templates: h+ from :func:`gwviz.data.waveforms.polarisations` (the one waveform path, the class
  approximants of :data:`gwviz.data.params.APPROXIMANTS`), face-on, cut to the 4.75 s before the
  amplitude peak (4 s of window + the whitening filter's 0.5-s reach + a 0.1-s start taper) and
  0.0625 s after it. Filtering is two-phase (complex), so h× of any orientation is covered.
* Bank: stochastic placement per class in (m1, m2) with the match of 4-s whitened templates
  (reference PSD: O3 H1 fit, from 20 Hz); its minimal match is measured on random injections
  with ``pycbc.filter.match``.
* Statistic: per detector |ρ_d(t)|², normalised by the template energy that falls inside the
  window; ρ_d² maximised over ±21.3 ms (Earth radius / c) around a common geocentric time t_c,
  summed over detectors, maximised over t_c in the last 0.1 s of the window and over templates:
  stat = max √Σ_d ρ_d². The class is that of the best template; 'noise' below a threshold.
* The filter is a batched torch FFT correlation: pycbc.filter.matched_filter, one template and one
  detector at a time, gives the same ρ(t) (tests/test_baseline.py checks it) but is ~5x slower per
  template and detector (bench/bench_baseline.py).

Layout: :mod:`~gwviz.baseline.bank` (templates, placement, fitting factors), :mod:`~gwviz.baseline.filter`
(the filter and its statistic), :mod:`~gwviz.baseline.compare` (samples, scores of both methods, metrics
through :mod:`gwviz.evaluation.metrics`, figure, :func:`run`) and ``python -m gwviz.baseline`` (:mod:`~gwviz.baseline.cli`).
"""
from .bank import (CUT, GRID, LAG_HI, LAG_LO, MATCH_GRID, MIN_MATCH, PATIENCE, TemplateBank, build_bank,
                   build_class_bank, default_bank_path, fitting_factors, load_or_build_bank, match_spectra, matches,
                   reference_response, spectra, template, window_cut)
from .cli import main
from .compare import SampleSet, compare, make_samples, method_metrics, run, sample_plan, score_cnn, score_mf
from .filter import FilterResult, MatchedFilter, segment_psd

__all__ = ["CUT", "GRID", "LAG_HI", "LAG_LO", "MATCH_GRID", "MIN_MATCH", "PATIENCE", "FilterResult", "MatchedFilter",
           "SampleSet", "TemplateBank", "build_bank", "build_class_bank", "compare", "default_bank_path",
           "fitting_factors", "load_or_build_bank", "main", "make_samples", "match_spectra", "matches", "method_metrics",
           "reference_response", "run", "sample_plan", "score_cnn", "score_mf", "segment_psd", "spectra", "template",
           "window_cut"]
