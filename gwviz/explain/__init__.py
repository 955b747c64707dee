"""Why the network decided: :mod:`~gwviz.explain.attribution` (Grad-CAM, HiResCAM, Integrated Gradients,
Occlusion as time profiles; the randomisation check), :mod:`~gwviz.explain.gallery` (per-class CAM
galleries, the paper's Fig. 2) and :mod:`~gwviz.explain.camstats` (where the maps peak relative to the
merger, over many samples)."""
