"""The paper's model: :mod:`~gwviz.model.network` (DAIN -> ResNet-54 -> two fully connected layers) and
:mod:`~gwviz.model.checkpoint` (weights on disk: atomic writes, safe loads, the metadata they carry)."""
