"""The keys napari-dcm puts in ``layer.metadata`` (one place, so nothing types them out twice).

Marker keys say what a layer is; the image fields below are the contract
between the reader and every part that works on a loaded image (ROIs,
overlays, the dock, hanging, exports).
"""

from __future__ import annotations

from typing import Any, TypedDict

# ---- markers: what a layer is
IMAGE = "napari_dcm"  # an image read by napari-dcm (value: format version 1)
ROI = "napari_dcm_roi"  # an EMBED ROI shapes layer: its ROI state (see layers.rois.roi_meta)
OVERLAY = "napari_dcm_overlay"  # an overlay layer: {"kind", "source", ...}
OVERLAY_OF = "napari_dcm_overlay_of"  # the name of the image an overlay belongs to
SR_DOCUMENT = "napari_dcm_sr"  # path of the structured report a layer stands for
LAYOUT_SAVED = "napari_dcm_layout_saved"  # scale/translate/visibility before a hanging
PLACEHOLDER = "napari_dcm_placeholder"  # an empty layer padding a hanging cell (or its label)
MAMMO = "napari_dcm_mammo"  # hanging values read once from an image's header (view codes, spacing, ...)
DISPLAYED_AREA = "napari_dcm_displayed_area"  # a presentation state's region to fit, data (row, column)

# ---- image metadata fields
PATHS = "paths"  # the files (or DICOMweb keys) of the image, in display order of first use
FRAME_PATHS = "frame_paths"  # the file of every display frame
DISPLAY_TO_STORED = "display_to_stored"  # stored frame index of every display frame
STORED_TO_DISPLAY = "stored_to_display"  # multi-frame only: display index of every stored frame
SOP_INSTANCE_UIDS = "sop_instance_uids"  # of every display frame
NUMBER_OF_FRAMES = "number_of_frames"  # multi-frame only
WINDOWS = "windows"  # header windows of the first shown frame: [{"center","width","explanation","function"}]
FRAME_WINDOWS = "frame_windows"  # per display frame, when frames differ (Enhanced objects)
VALUE_UNIT = "value_unit"  # unit of the values after the modality LUT: "HU" for CT, else RescaleType (or "")
WORLD_UNIT = "world_unit"  # "mm" when scale and translate are millimetres (PixelSpacing known)
PADDING = "padding"  # [low, high] modality values that are pixel padding (PixelPaddingValue / RangeLimit)
SCHEDULER = "scheduler"  # files on dask workers: the scheduler's address (paths are the workers')


class ImageMetadata(TypedDict, total=False):
    """What ``metadata`` of a napari-dcm image layer holds (plus the series ``info`` values:
    patient_id, modality, study_date, series_description, image_laterality, ...)."""

    napari_dcm: int
    paths: list[str]
    frame_paths: list[str]
    display_to_stored: list[int]
    stored_to_display: list[int]
    sop_instance_uids: list[str]
    number_of_frames: int
    multiframe: bool
    spacing_uniform: bool
    windows: list[dict[str, Any]]
    frame_windows: list[list[dict[str, Any]]]
    photometric: str
    transfer_syntax: str
    notes: list[str]
    image_orientation: list[float]
    value_unit: str
    world_unit: str
    padding: list[float]
    scheduler: str


def is_image(metadata: dict[str, Any]) -> bool:
    """Metadata of an image layer read by napari-dcm."""
    return IMAGE in metadata and DISPLAY_TO_STORED in metadata
