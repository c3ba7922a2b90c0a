"""Layer data: napari-dcm's images, ROIs and overlays as napari layer-data tuples.

Pure data, no napari import, so ``napari_dcm.read`` works in scripts,
notebooks and on dask workers.  Every builder returns :class:`LayerData`
(a ``(data, kwargs, layer_type)`` tuple napari accepts as is); the metadata
keys napari-dcm puts on layers are named in :mod:`.keys`.
"""

from .data import LayerData

__all__ = ["LayerData"]
