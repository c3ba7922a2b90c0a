"""Write the bundled sample study: a synthetic CT head phantom (no patient data).

    python scripts/make_sample_study.py [OUT_DIR]

Deterministic: the same files every run (fixed UIDs, no dates from the clock).
"""

from __future__ import annotations

import hashlib
import os
import sys

import numpy as np
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

OUT = (
    sys.argv[1]
    if len(sys.argv) > 1
    else os.path.join(os.path.dirname(__file__), "..", "src", "napari_dcm", "data", "sample_study")
)


def uid(name: str) -> str:
    return "2.25." + str(int(hashlib.sha256(name.encode()).hexdigest()[:30], 16))


def phantom(n=40, size=128):
    """3D head phantom in HU: skull, brain, ventricles, a few lesions."""
    z, y, x = np.mgrid[-1 : 1 : n * 1j, -1 : 1 : size * 1j, -1 : 1 : size * 1j]
    hu = np.full(z.shape, -1000.0)

    def ell(cx, cy, cz, ax, ay, az):
        return ((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2 + ((z - cz) / az) ** 2 <= 1

    head = ell(0, 0, 0, 0.72, 0.9, 0.95)
    brain = ell(0, 0, 0, 0.64, 0.82, 0.87)
    hu[head] = 1200  # skull
    hu[brain] = 32  # brain
    hu[ell(-0.18, -0.05, 0.1, 0.1, 0.3, 0.35) | ell(0.18, -0.05, 0.1, 0.1, 0.3, 0.35)] = 8  # ventricles
    hu[ell(0.3, 0.35, -0.2, 0.08, 0.08, 0.1)] = 70  # hyperdense lesion
    hu[ell(-0.3, 0.4, 0.3, 0.1, 0.06, 0.12)] = 18  # hypodense lesion
    hu[ell(0, -0.75, -0.5, 0.25, 0.12, 0.2)] = -1000  # sinus air
    rng = np.random.default_rng(7)
    hu += rng.normal(0, 3, hu.shape)
    return np.round(hu).astype(np.int16)


def main():
    os.makedirs(OUT, exist_ok=True)
    vol = phantom()
    n, rows, cols = vol.shape
    study, series, frame = uid("napari-dcm sample study"), uid("napari-dcm sample series"), uid("napari-dcm sample for")
    spacing, thick = 0.9, 3.0
    for k in range(n):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = uid(f"napari-dcm sample {k}")
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.StudyDate = "20240102"
        ds.Modality = "CT"
        ds.StudyDescription = "Synthetic head phantom"
        ds.SeriesDescription = "Axial 3mm"
        ds.PatientName = "Phantom^Head"
        ds.PatientID = "SAMPLE-001"
        ds.StudyInstanceUID = study
        ds.SeriesInstanceUID = series
        ds.FrameOfReferenceUID = frame
        ds.SeriesNumber = 2
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [-cols * spacing / 2, -rows * spacing / 2, -60.0 + k * thick]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.SliceThickness = thick
        ds.PixelSpacing = [spacing, spacing]
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = rows, cols
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
        ds.PixelRepresentation = 0
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
        ds.WindowCenter, ds.WindowWidth = [40, 400], [80, 2000]
        ds.WindowCenterWidthExplanation = ["BRAIN", "BONE"]
        ds.PixelData = (vol[k].astype(np.int32) + 1024).clip(0, 4095).astype(np.uint16).tobytes()
        # file names deliberately not in slice order: the reader sorts by position
        name = f"IM{(k * 17) % n:04d}.dcm"
        ds.save_as(os.path.join(OUT, name), enforce_file_format=True)
    print(f"wrote {n} slices to {os.path.abspath(OUT)}")


if __name__ == "__main__":
    main()
