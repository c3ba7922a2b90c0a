"""napari-dcm dock widgets (Qt)."""
