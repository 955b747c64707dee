"""The paper's results, measured: :mod:`~gwviz.evaluation.metrics` (the one home of ROC, TPR at FPR,
accuracy per SNR bin), :mod:`~gwviz.evaluation.evaluate` (``python -m gwviz.evaluation.evaluate``: accuracy,
confusion, ROC at SNR 8 and 12), :mod:`~gwviz.evaluation.calibration` (the detection statistic and its
thresholds per false-positive rate) and :mod:`~gwviz.evaluation.injections` (signals injected into real
strain and found by a scan)."""
