"""Everything that touches a live napari viewer: docks, controllers, key bindings.

Private: the public entry points are ``napari_dcm.view`` and the npe2
manifest's widgets.  Modules:

* :mod:`.viewer` -- adding napari-dcm layer data to a viewer, ``view``;
* :mod:`.keys` -- napari-dcm's key bindings, bound in one place;
* :mod:`.compat` -- the few napari workarounds (no public hook yet), each said why;
* :mod:`.state` -- per-viewer state (docks, controllers, flags) without touching napari objects;
* docks: :mod:`.dicom_dock` (tabs in :mod:`.tags_tab`, :mod:`.window_tab`, :mod:`.layout_tab`),
  :mod:`.roi_dock`, :mod:`.dicomweb_dock`, :mod:`.sr_dock`;
* controllers: :mod:`.roi_controller` (live ROI editing), :mod:`.window` (presets, W/L
  mouse mode), :mod:`.hanging` (mammography hanging in napari's grid).
"""
