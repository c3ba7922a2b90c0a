"""``python -m napari_dcm``: the ``napari-dcm`` command (:func:`napari_dcm.cli.main`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
