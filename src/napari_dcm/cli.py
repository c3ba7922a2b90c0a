"""The ``napari-dcm`` command.

    napari-dcm [PATH ...] [--filter FIELD=VALUE ...] [--no-recursive]
               [--screenshot PNG [--canvas-only]] [--exit]

Opens napari with the napari-dcm reader.  ``--screenshot`` saves the whole
napari window (canvas, layer list, docks) once the data is shown, or the
canvas alone with ``--canvas-only``; with ``--exit`` (implied when there is
no display) napari quits afterwards, which is how the README's demo runs
under Xvfb.
"""

from __future__ import annotations

import argparse
import os
import sys

from .dicom.filters import FILTER_FIELDS


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="napari-dcm",
        description="Open DICOM files, folders and DICOMDIRs in napari (lazy, every transfer syntax).",
    )
    p.add_argument("paths", nargs="*", help="DICOM files, folders (recursive) or DICOMDIR files")
    p.add_argument(
        "--filter",
        "-f",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help=f"keep instances whose FIELD contains VALUE (case-insensitive; repeat to AND). Fields: {', '.join(FILTER_FIELDS)}",
    )
    p.add_argument("--no-recursive", action="store_true", help="do not descend into sub-folders")
    p.add_argument(
        "--annotations", metavar="CSV", help="import EMBED ROIs from this CSV (shapes layers; never modified)"
    )
    p.add_argument("--sample", action="store_true", help="open the bundled synthetic sample study")
    p.add_argument(
        "--screenshot",
        metavar="PNG",
        help="once the data is shown, save a screenshot of the whole napari window (canvas, layer list, docks)",
    )
    p.add_argument(
        "--canvas-only", action="store_true", help="with --screenshot: save the canvas (the image view) alone"
    )
    p.add_argument("--exit", action="store_true", help="quit after loading (and after --screenshot)")
    p.add_argument("--ndisplay", type=int, choices=(2, 3), default=2, help="2D or 3D view")
    p.add_argument(
        "--hang",
        nargs="?",
        const="auto",
        choices=("auto", "1x2", "1x3", "2x2", "2x4"),
        help="hang mammograms in a grid layout (auto, the default: chosen from the views -- 2x4 with a prior study, 2x2 with CC and MLO, 1x2 of a single view, 1x1 for one image)",
    )
    p.add_argument("--no-dock", action="store_true", help="do not open the DICOM dock")
    g = p.add_argument_group("DICOMweb")
    g.add_argument(
        "--dicomweb", metavar="URL", help="DICOMweb base URL (a bare http://host:8042 means Orthanc's /dicom-web)"
    )
    g.add_argument("--study", metavar="UID", help="StudyInstanceUID to open from --dicomweb")
    g.add_argument("--series", metavar="UID", help="SeriesInstanceUID (optional)")
    g.add_argument("--instance", metavar="UID", help="SOPInstanceUID (optional)")
    g.add_argument(
        "--user", metavar="NAME", help="HTTP basic user (password from NAPARI_DCM_DICOMWEB_PASSWORD or a prompt)"
    )
    g.add_argument("--browse", action="store_true", help="open the DICOMweb browser dock for --dicomweb")
    g.add_argument("--insecure", action="store_true", help="do not verify TLS certificates (not recommended)")
    _remote_arguments(p)
    add_dimse_arguments(p)
    add_cases_arguments(p)
    p.add_argument("--version", action="store_true", help="print the version and exit")
    return p


# -------------------------------------------------------------------------- remote files (dask.distributed)


def _remote_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "Files on another machine (dask.distributed; see docs/remote.md)",
        "PATHs are paths on the workers. A dask scheduler runs any code it is sent: reach it through SSH. "
        "Addresses off the loopback interface need tls:// (or --insecure).",
    )
    g.add_argument(
        "--scheduler", metavar="ADDRESS", help="dask scheduler whose workers hold the files (tcp://HOST:PORT)"
    )
    g.add_argument(
        "--tunnel",
        metavar="USER@HOST",
        help="start a dask scheduler and worker on HOST over ssh (remote loopback, port forwarded), close them on exit",
    )
    g.add_argument(
        "--remote-python", metavar="PATH", default="python3", help="Python with napari-dcm on HOST (--tunnel)"
    )
    g.add_argument(
        "--ssh-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra ssh argument for --tunnel (repeat; e.g. --ssh-arg=-p --ssh-arg=2222); ~/.ssh/config applies",
    )
    g.add_argument("--remote-decode", action="store_true", help="decode frames on the workers (fast link, weak client)")


def _is_remote(args) -> bool:
    return bool(getattr(args, "scheduler", None) or getattr(args, "tunnel", None))


def _remote_read_options(viewer, args) -> dict | None:
    """``read`` options for --scheduler/--tunnel (the tunnel is opened here); None if it failed."""
    if not _is_remote(args):
        return {}
    from ._qt.remote import remote_options

    return remote_options(
        viewer,
        scheduler=args.scheduler,
        tunnel=args.tunnel,
        remote_python=args.remote_python,
        ssh_args=args.ssh_arg,
        remote_decode=args.remote_decode,
        insecure=args.insecure,
    )


# --------------------------------------------------------------------------
# case review (--cases)


def add_cases_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("case review")
    g.add_argument(
        "--cases",
        metavar="FOLDER|CSV",
        help="review case by case: a study folder tree, a DICOMDIR or an EMBED ROI CSV (cases = its rows' studies); "
        "--filter narrows the list, --hang sets the mammography layout",
    )
    g.add_argument("--root", metavar="DIR", help="--cases CSV: the folder its relative paths start from")


def _open_cases(viewer, args):
    """The case navigator, indexing ``--cases`` in the background; it opens the first case."""
    from ._qt.case_dock import cases_dock

    dock = cases_dock(viewer)
    if args.filter:
        dock.filter_edit.setText(" ".join(f'{k}="{v}"' for k, v in (f.split("=", 1) for f in args.filter)))
    if args.hang:
        dock.layout_combo.setCurrentText(args.hang)
    dock.load(args.cases, root=args.root)
    return dock


def _cases_ready(dock) -> bool:
    return dock is None or (not dock.indexing and (dock.current is not None or dock.index is not None))


# --------------------------------------------------------------------------
# PACS over DIMSE (--dimse)


def add_dimse_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("PACS (DIMSE)")
    g.add_argument(
        "--dimse",
        metavar="AET@HOST:PORT",
        help="retrieve --study [--series] from this DICOM node (or a saved node's name) and open it",
    )
    g.add_argument("--calling-aet", metavar="NAME", help="our AE title (default NAPARI_DCM)")
    g.add_argument(
        "--dimse-method", choices=("C-GET", "C-MOVE"), help="how to retrieve (default C-GET, or the saved node's)"
    )
    g.add_argument(
        "--move-port", type=int, metavar="PORT", help="C-MOVE: port of the temporary storage SCP (implies C-MOVE)"
    )


def _dimse_node(args):
    """The node of ``--dimse`` (an exit code when the options are wrong)."""
    from .pacs import node_from

    if not args.study:
        print("napari-dcm: --dimse needs --study UID", file=sys.stderr)
        return 2
    method = args.dimse_method or ("C-MOVE" if args.move_port else None)
    try:
        return node_from(args.dimse, calling_ae=args.calling_aet, method=method, move_port=args.move_port)
    except ValueError as exc:
        print(f"napari-dcm: {exc}", file=sys.stderr)
        return 2


def _open_dimse(viewer, node, args):
    """Start the retrieve in the PACS panel; the series opens in ``viewer`` as it arrives.
    Returns the ProgressiveOpen (``.finished``, ``.added``, ``.job``)."""
    from ._qt.pacs_dock import pacs_dock

    dock = pacs_dock(viewer, node)
    opener = dock.retrieve(args.study, args.series)
    if opener is not None:
        shown = opener.on_done

        def done(o):
            shown(o)
            _print_layers(o.added)

        opener.on_done = done
    return opener


def _print_layers(layers) -> None:
    from napari.layers import Shapes

    for layer in layers:
        if isinstance(layer, Shapes):
            print(f"napari-dcm: layer {layer.name!r} with {len(layer.data)} rectangle(s)")
        else:
            print(f"napari-dcm: layer {layer.name!r} shape={tuple(layer.data.shape)} dtype={layer.data.dtype}")


def _open_web(viewer, web: dict, args) -> list:
    from . import _notify
    from .dicom import dicomweb as dw

    auth = args.user if args.user else None
    try:
        srv = dw.connect(web["url"], auth=auth, verify=not args.insecure, prompt=sys.stdin.isatty())
    except dw.DicomWebError as exc:
        _notify.error(f"napari-dcm: {exc}")
        return []
    if args.browse or not web.get("study"):
        from ._qt.dicomweb_dock import dicomweb_dock

        dicomweb_dock(viewer, srv)
    if not web.get("study"):
        return []
    from ._qt.dicomweb_dock import open_from_web

    return open_from_web(viewer, srv, web["study"], web.get("series"), web.get("instance"))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from . import __version__

    if args.version:
        print(f"napari-dcm {__version__}")
        return 0
    paths = list(args.paths)
    web = None
    launch = [p for p in paths if p.startswith("napari-dcm://")]
    if launch:
        from .web import parse_launch_url

        try:
            web = parse_launch_url(launch[0])
        except ValueError as exc:
            print(f"napari-dcm: {exc}", file=sys.stderr)
            return 2
        paths = [p for p in paths if not p.startswith("napari-dcm://")]
    elif args.dicomweb:
        if not args.study and not args.browse:
            print("napari-dcm: --dicomweb needs --study UID (or --browse)", file=sys.stderr)
            return 2
        web = {"url": args.dicomweb, "study": args.study, "series": args.series, "instance": args.instance}
    dimse_node = _dimse_node(args) if args.dimse else None
    if isinstance(dimse_node, int):
        return dimse_node
    if args.sample:
        from ._sample import SAMPLE_STUDY

        paths.append(SAMPLE_STUDY)
    for p in (
        ([] if _is_remote(args) else paths)
        + ([args.annotations] if args.annotations else [])
        + ([args.cases] if args.cases else [])
    ):
        if not os.path.exists(p):
            print(f"napari-dcm: {p}: no such file or folder", file=sys.stderr)
            return 2
    try:
        from .dicom.filters import parse_filters

        parse_filters(args.filter)
    except ValueError as exc:
        print(f"napari-dcm: {exc}", file=sys.stderr)
        return 2

    import napari
    from napari.layers import Shapes

    from ._qt.viewer import add_to_viewer

    headless = not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY")
    viewer = napari.Viewer(title="napari-dcm")
    added = []
    remote = _remote_read_options(viewer, args)
    if paths and remote is not None:
        opts = dict(recursive=not args.no_recursive, filters=args.filter or None, **remote)
        if args.annotations:
            opts["annotations"] = args.annotations
        added = add_to_viewer(viewer, paths, **opts)
        if args.annotations:
            from ._qt.roi_dock import roi_dock

            roi_dock(viewer)
    if web is not None:
        added += _open_web(viewer, web, args)
    pending = _open_dimse(viewer, dimse_node, args) if dimse_node is not None else None
    if args.cases and not args.no_dock:
        from ._qt.dicom_dock import dicom_dock

        dicom_dock(viewer)
    case_nav = _open_cases(viewer, args) if args.cases else None
    for layer in added:
        if isinstance(layer, Shapes):
            print(f"napari-dcm: layer {layer.name!r} with {len(layer.data)} rectangle(s)")
        else:
            print(f"napari-dcm: layer {layer.name!r} shape={tuple(layer.data.shape)} dtype={layer.data.dtype}")
    if added and not args.no_dock:
        from ._qt.dicom_dock import dicom_dock

        dock = dicom_dock(viewer)
        if args.hang:
            dock.hang(None if args.hang == "auto" else args.hang)
    if args.ndisplay == 3:
        viewer.dims.ndisplay = 3
    if args.screenshot or args.exit or headless:
        from qtpy.QtCore import QTimer

        def finish():
            if pending is not None and not pending.finished:  # a DIMSE retrieve still arriving
                QTimer.singleShot(250, finish)
                return
            if not _cases_ready(case_nav):  # the case list still indexing
                QTimer.singleShot(250, finish)
                return
            if args.screenshot and args.ndisplay != 3 and not settled():
                QTimer.singleShot(200, finish)
                return
            if args.screenshot:
                viewer.screenshot(args.screenshot, canvas_only=args.canvas_only)
                what = "canvas" if args.canvas_only else "window"
                print(f"napari-dcm: screenshot of the {what} saved to {args.screenshot}")
            if args.exit or headless:
                viewer.close()
                from qtpy.QtWidgets import QApplication

                QApplication.instance().quit()

        sizes: list[tuple[int, ...]] = []

        def settled() -> bool:
            """Nobody touched the camera of a scripted run: show the final layout whole, once
            the canvas kept its size for 200 ms (a loaded machine can deliver the docks'
            canvas resize late) -- at most ~4 s of waiting."""
            from ._qt.viewer import fit_visible

            sizes.append(tuple(viewer.canvas.size))
            fit_visible(viewer)
            return len(sizes) >= 20 or (len(sizes) >= 2 and sizes[-1] == sizes[-2])

        QTimer.singleShot(1500, finish)
    napari.run()
    if _is_remote(args):
        from ._qt.remote import tunnels

        for t in tunnels(viewer):
            t.close()
    if pending is not None and not pending.added:
        return 1
    if case_nav is not None:
        if case_nav.current is not None:
            c = case_nav.current
            print(f"napari-dcm: case {c.number} of {len(case_nav.index)}: {c.label()}")
        return 0 if case_nav.current is not None else 1
    return 0 if (added or not (paths or web)) else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
