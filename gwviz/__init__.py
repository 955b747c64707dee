"""gwviz: find and classify compact-binary gravitational waves in H1/L1/V1 strain with a
ResNet-54 + DAIN CNN (Sasaoka et al. 2023), and show where it looks (Grad-CAM)."""
from .constants import CLASSES, DETECTORS, SAMPLE_RATE, WINDOW_SAMPLES

__version__ = "0.1.0"


def load_classifier(path=None, device: str = "cpu", allow_untrained: bool = False):
    """Load the classifier (see :func:`gwviz.classifier.load_classifier`); imported lazily so that
    ``import gwviz`` stays light."""
    from .classifier import load_classifier as _load
    return _load(path, device, allow_untrained)


__all__ = ["CLASSES", "DETECTORS", "SAMPLE_RATE", "WINDOW_SAMPLES", "load_classifier", "__version__"]
