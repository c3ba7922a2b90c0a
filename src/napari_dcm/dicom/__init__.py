"""The pure DICOM core of napari-dcm.

Nothing in this package imports napari or Qt: it is usable from scripts,
notebooks and dask workers.
"""
