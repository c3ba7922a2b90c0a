"""The real servers of servers.py work: Orthanc DIMSE, a namespaced dask worker, sshd, dciodvfy."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from servers import LOOPBACK, NamespacedDaskCluster, free_port, require, unshare_argv

# --------------------------------------------------------------------------
# Orthanc DIMSE (pynetdicom as the client)

SCU_AET = "NAPARI_TEST"
UNCOMPRESSED = [pydicom.uid.ExplicitVRLittleEndian, pydicom.uid.ImplicitVRLittleEndian, pydicom.uid.ExplicitVRBigEndian]


def storage_contexts(sop_classes, transfer_syntaxes):
    """One presentation context per (SOP class, transfer syntax group).

    A C-STORE sender (Orthanc inside C-GET/C-MOVE) must find a context whose
    accepted syntax is the stored one, or it transcodes (and cannot for JPEG
    2000 without GDCM): so each stored syntax gets its own context, and the
    uncompressed ones share one."""
    from pynetdicom import build_context

    groups = [[ts] for ts in dict.fromkeys(transfer_syntaxes) if ts not in UNCOMPRESSED] + [UNCOMPRESSED]
    return [build_context(sop, g) for sop in dict.fromkeys(sop_classes) for g in groups]


def c_find(server, level, **keys):
    from pynetdicom import AE
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

    ae = AE(ae_title=SCU_AET)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    q = pydicom.Dataset()
    q.QueryRetrieveLevel = level
    for k, v in keys.items():
        setattr(q, k, v)
    assoc = ae.associate(server.host, server.dicom_port, ae_title=server.aet)
    assert assoc.is_established
    try:
        out, statuses = [], []
        for status, ident in assoc.send_c_find(q, StudyRootQueryRetrieveInformationModelFind):
            statuses.append(status.Status)
            if status.Status in (0xFF00, 0xFF01):
                out.append(ident)
    finally:
        assoc.release()
    assert statuses[-1] == 0x0000
    return out


def c_get(server, entry, dest: Path, level="SERIES", instance: str | None = None):
    """C-GET with SCP role selection; every received instance written as a DICOM file in ``dest``."""
    from pynetdicom import AE, build_role, evt
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelGet

    ae = AE(ae_title=SCU_AET)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    contexts = storage_contexts([entry.sop_class], [entry.transfer_syntax])
    for cx in contexts:
        ae.add_requested_context(cx.abstract_syntax, cx.transfer_syntax)
    assert len(ae.requested_contexts) <= 128  # pynetdicom's (and the standard's) limit per association
    roles = [build_role(sop, scp_role=True) for sop in {cx.abstract_syntax for cx in contexts}]
    received = []

    def on_store(event):
        path = dest / f"{event.request.AffectedSOPInstanceUID}.dcm"
        path.write_bytes(event.encoded_dataset())
        received.append(path)
        return 0x0000

    q = pydicom.Dataset()
    q.QueryRetrieveLevel = level
    q.StudyInstanceUID = entry.study
    if level in ("SERIES", "IMAGE"):
        q.SeriesInstanceUID = entry.series
    if level == "IMAGE":
        q.SOPInstanceUID = instance
    assoc = ae.associate(
        server.host, server.dicom_port, ae_title=server.aet, ext_neg=roles, evt_handlers=[(evt.EVT_C_STORE, on_store)]
    )
    assert assoc.is_established
    try:
        statuses = [s for s, _ in assoc.send_c_get(q, StudyRootQueryRetrieveInformationModelGet)]
    finally:
        assoc.release()
    assert statuses[-1].Status == 0x0000, statuses[-1]
    assert statuses[-1].get("NumberOfFailedSuboperations", 0) == 0
    return received


def assert_same_instances(received, entry):
    """Retrieved files: same SOP instances and pixels as the corpus files (compressed: same bytes)."""
    got = {}
    for p in received:
        ds = pydicom.dcmread(p)
        got[ds.SOPInstanceUID] = ds
    assert sorted(got) == sorted(entry.sops)
    for uid, ds in got.items():
        local = pydicom.dcmread(entry.by_sop[uid])
        if local.file_meta.TransferSyntaxUID.is_compressed:
            # sent as stored: the compressed bytes themselves
            assert ds.file_meta.TransferSyntaxUID == local.file_meta.TransferSyntaxUID
            assert ds.PixelData == local.PixelData
        else:
            # uncompressed syntaxes share one context (Orthanc converts, e.g. big -> little endian)
            assert ds.file_meta.TransferSyntaxUID in UNCOMPRESSED
        assert np.array_equal(ds.pixel_array, local.pixel_array)


def test_dimse_echo(orthanc_dimse):
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification

    ae = AE(ae_title=SCU_AET)
    ae.add_requested_context(Verification)
    assoc = ae.associate(orthanc_dimse.host, orthanc_dimse.dicom_port, ae_title="ORTHANC")
    assert assoc.is_established
    assert assoc.acceptor.ae_title == "ORTHANC"
    status = assoc.send_c_echo()
    assoc.release()
    assert status.Status == 0x0000


def test_dimse_find_wildcards(orthanc_dimse):
    files = orthanc_dimse.files
    knee = files["knee"]
    studies = c_find(orthanc_dimse, "STUDY", PatientName="KN*", StudyInstanceUID="", PatientID="")
    assert [s.StudyInstanceUID for s in studies] == [knee.study]
    assert len(c_find(orthanc_dimse, "STUDY", PatientName="KNE?", StudyInstanceUID="")) == 1
    both = c_find(orthanc_dimse, "STUDY", PatientName="Compressed*", StudyInstanceUID="")
    assert sorted(s.StudyInstanceUID for s in both) == sorted([files["ct"].study, files["mr_big_endian"].study])
    assert len(c_find(orthanc_dimse, "STUDY", PatientName="*", StudyInstanceUID="")) == len(files)
    assert c_find(orthanc_dimse, "STUDY", PatientName="NOBODY*", StudyInstanceUID="") == []

    series = c_find(
        orthanc_dimse,
        "SERIES",
        StudyInstanceUID=knee.study,
        SeriesDescription="T1W*",
        SeriesInstanceUID="",
        Modality="",
        NumberOfSeriesRelatedInstances="",
    )
    assert len(series) == 1
    assert series[0].SeriesInstanceUID == knee.series and series[0].Modality == "MR"
    assert int(series[0].NumberOfSeriesRelatedInstances) == 24
    assert (
        c_find(orthanc_dimse, "SERIES", StudyInstanceUID=knee.study, SeriesDescription="T2*", SeriesInstanceUID="")
        == []
    )


def test_dimse_get_series(orthanc_dimse, tmp_path):
    knee = orthanc_dimse.files["knee"]
    received = c_get(orthanc_dimse, knee, tmp_path)
    assert len(received) == 24
    assert_same_instances(received, knee)


@pytest.mark.parametrize("name", ["j2k_multiframe", "ct", "mr_big_endian"])
def test_dimse_get_instance(orthanc_dimse, tmp_path, name):
    entry = orthanc_dimse.files[name]
    received = c_get(orthanc_dimse, entry, tmp_path, level="IMAGE", instance=entry.sops[0])
    assert len(received) == 1
    assert_same_instances(received, entry)
    if name == "j2k_multiframe":
        assert pydicom.dcmread(received[0]).pixel_array.shape == (10, 64, 64)


def test_dimse_move_to_storage_scp(orthanc_dimse, tmp_path):
    from pynetdicom import AE, evt
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelMove

    knee = orthanc_dimse.files["knee"]
    received = []

    def on_store(event):
        path = tmp_path / f"{event.request.AffectedSOPInstanceUID}.dcm"
        path.write_bytes(event.encoded_dataset())
        received.append((event.assoc.requestor.ae_title, path))
        return 0x0000

    scp = AE(ae_title=orthanc_dimse.move_aet)
    for cx in storage_contexts([knee.sop_class], [knee.transfer_syntax]):
        scp.add_supported_context(cx.abstract_syntax, cx.transfer_syntax)
    server = scp.start_server(
        (LOOPBACK, orthanc_dimse.move_port), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)]
    )
    try:
        scu = AE(ae_title=SCU_AET)
        scu.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
        q = pydicom.Dataset()
        q.QueryRetrieveLevel = "SERIES"
        q.StudyInstanceUID = knee.study
        q.SeriesInstanceUID = knee.series
        assoc = scu.associate(orthanc_dimse.host, orthanc_dimse.dicom_port, ae_title=orthanc_dimse.aet)
        assert assoc.is_established
        try:
            ok = [
                s for s, _ in assoc.send_c_move(q, orthanc_dimse.move_aet, StudyRootQueryRetrieveInformationModelMove)
            ]
            # a registered destination nobody listens on: the move fails, with a status
            bad = [
                s
                for s, _ in assoc.send_c_move(
                    q, orthanc_dimse.unreachable_aet, StudyRootQueryRetrieveInformationModelMove
                )
            ]
            # an AET Orthanc does not know: refused
            unknown = [s for s, _ in assoc.send_c_move(q, "NOT_REGISTERED", StudyRootQueryRetrieveInformationModelMove)]
        finally:
            assoc.release()
    finally:
        server.shutdown()
    assert ok[-1].Status == 0x0000
    assert {aet for aet, _ in received} == {"ORTHANC"}
    assert len(received) == 24
    assert_same_instances([p for _, p in received], knee)
    print("C-MOVE statuses: unreachable", hex(bad[-1].Status), "unknown", hex(unknown[-1].Status))
    assert bad[-1].Status != 0x0000
    assert unknown[-1].Status != 0x0000


def test_dimse_store(orthanc_dimse, corpus, tmp_path):
    from pynetdicom import AE

    ds = pydicom.dcmread(corpus / "transfer_syntax/CT_small.dcm")
    ds.PatientID, ds.PatientName = "DIMSE-STORE", "STORE^Test"
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = generate_uid(), generate_uid(), generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    src = tmp_path / "store.dcm"
    ds.save_as(src)

    ae = AE(ae_title=SCU_AET)
    ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
    assoc = ae.associate(orthanc_dimse.host, orthanc_dimse.dicom_port, ae_title=orthanc_dimse.aet)
    assert assoc.is_established
    try:
        status = assoc.send_c_store(src)
    finally:
        assoc.release()
    assert status.Status == 0x0000
    try:
        found = c_find(orthanc_dimse, "STUDY", PatientID="DIMSE-STORE", StudyInstanceUID="")
        assert [f.StudyInstanceUID for f in found] == [ds.StudyInstanceUID]
        from servers import DimseEntry

        entry = DimseEntry(
            paths=[src],
            study=ds.StudyInstanceUID,
            series=ds.SeriesInstanceUID,
            sops=[ds.SOPInstanceUID],
            sop_class=ds.SOPClassUID,
            transfer_syntax=ds.file_meta.TransferSyntaxUID,
            patient_name="STORE^Test",
            by_sop={ds.SOPInstanceUID: src},
        )
        (tmp_path / "got").mkdir()
        assert_same_instances(c_get(orthanc_dimse, entry, tmp_path / "got"), entry)
    finally:
        r = orthanc_dimse.http.post(f"{orthanc_dimse.root}/tools/lookup", data=ds.StudyInstanceUID, timeout=10)
        for hit in r.json():
            orthanc_dimse.http.delete(f"{orthanc_dimse.root}/studies/{hit['ID']}", timeout=10)
    assert c_find(orthanc_dimse, "STUDY", PatientID="DIMSE-STORE", StudyInstanceUID="") == []


# --------------------------------------------------------------------------
# dask worker in a private mount namespace


def _remote_listing(root):
    import hashlib
    import os

    out = {}
    for d, _, names in os.walk(root):
        for n in names:
            p = os.path.join(d, n)
            if "worker-space" not in p:
                with open(p, "rb") as fh:
                    out[p] = hashlib.sha256(fh.read()).hexdigest()
    return out


def _mount_ns():
    import os

    return os.readlink("/proc/self/ns/mnt")


def _frame(path, i):
    import pydicom

    return pydicom.dcmread(path).pixel_array[i]


def test_dask_worker_reads_files_the_test_process_cannot(dask_remote, manifest):
    from distributed import Client

    with Client(dask_remote.address, timeout="10s", set_as_default=False) as client:
        assert client.run_on_scheduler(lambda: 1) == 1
        listing = client.submit(_remote_listing, str(dask_remote.remote_root), pure=False).result(timeout=60)
        worker_ns = client.submit(_mount_ns, pure=False).result(timeout=30)
        frame = client.submit(_frame, str(dask_remote.remote["j2k_multiframe"]), 7).result(timeout=60)
        cine = client.submit(_frame, str(dask_remote.remote["rgb_cine"]), 15).result(timeout=120)
    # 24 series files + the two multi-frame files, byte-identical to the corpus (MANIFEST sha256)
    assert len(listing) == 26 == len(dask_remote.sources)
    corpus_root = next(iter(dask_remote.sources.values())).parents[2]
    for remote, src in dask_remote.sources.items():
        assert listing[str(remote)] == manifest[str(src.relative_to(corpus_root))]["sha256"]
    assert len([p for p in listing if p.startswith(str(dask_remote.remote["mr_series"]) + "/")]) == 24
    # ... and none of it exists for the test process
    assert worker_ns != _mount_ns()
    assert not dask_remote.remote_root.exists()
    for remote in dask_remote.sources:
        with pytest.raises(FileNotFoundError):
            remote.read_bytes()
    assert np.array_equal(
        frame, pydicom.dcmread(dask_remote.sources[dask_remote.remote["j2k_multiframe"]]).pixel_array[7]
    )
    assert cine.shape == (600, 800, 3)
    assert np.array_equal(cine, pydicom.dcmread(dask_remote.sources[dask_remote.remote["rgb_cine"]]).pixel_array[15])


def test_dask_worker_killed_mid_task(dask_remote):
    from distributed import Client

    with Client(dask_remote.address, timeout="10s", set_as_default=False) as client:
        fut = client.submit(time.sleep, 120, pure=False)
        deadline = time.monotonic() + 30
        while not any(client.processing().values()):
            assert time.monotonic() < deadline, "the task never started"
            time.sleep(0.05)
        dask_remote.kill_worker()
        assert not dask_remote.worker_alive()
        assert client.scheduler_info(n_workers=-1)["workers"] == {}
        # with no worker left the task waits for one (it neither fails nor finishes)
        time.sleep(0.5)
        assert fut.status == "pending"
        fut.cancel()
        dask_remote.start_worker()
        assert dask_remote.worker_alive()
        listing = client.submit(_remote_listing, str(dask_remote.remote_root), pure=False).result(timeout=60)
    assert len(listing) == 26


def _processes_with_mount(path: str) -> list[str]:
    hits = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/mountinfo") as fh:
                if any(path in line.split()[4] for line in fh):
                    hits.append(pid)
        except OSError:
            pass
    return hits


def test_dask_cluster_teardown_leaves_nothing(corpus):
    require(unshare_argv() is not None, "no private mount namespace here (unshare, root or user namespaces)")
    cluster = NamespacedDaskCluster(corpus, nthreads=1)
    try:
        pids = cluster.pids()
        mountpoint = str(cluster.mountpoint)
        assert len(pids) == 2
        assert _processes_with_mount(mountpoint) == [str(cluster.worker.pid)]
    finally:
        cluster.stop()
    assert not any(os.path.exists(f"/proc/{p}") for p in pids)
    assert _processes_with_mount(mountpoint) == []
    assert not cluster.dir.exists()


# --------------------------------------------------------------------------
# sshd


def test_ssh_runs_remote_commands(sshd_server):
    code = "import os, sys; print(os.getuid(), sys.argv[1])"
    r = subprocess.run(
        sshd_server.argv("python3", "-c", shlex.quote(code), "hello"),
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [str(os.getuid()), "hello"]
    # the project's own Python is usable on the "remote" side
    code = "import distributed; print(distributed.__version__)"
    r = subprocess.run(
        sshd_server.argv(sshd_server.remote_python, "-c", shlex.quote(code)),
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    import distributed

    assert r.stdout.strip() == distributed.__version__, r.stderr


def test_ssh_refuses_other_keys_and_hosts(sshd_server, tmp_path):
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True, timeout=30)
    argv = sshd_server.argv("true")
    argv[argv.index("-i") + 1] = str(other)
    r = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=60)
    assert r.returncode == 255 and "Permission denied" in r.stderr
    # a known_hosts naming another host key: the pinned-key check refuses to connect
    (tmp_path / "known_hosts").write_text(f"[{LOOPBACK}]:{sshd_server.port} " + (other.with_suffix(".pub")).read_text())
    argv = [a.replace(str(sshd_server.known_hosts), str(tmp_path / "known_hosts")) for a in sshd_server.argv("true")]
    r = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=60)
    assert r.returncode == 255 and "Host key verification failed" in r.stderr


ECHO_SERVER = """
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(4)
print(s.getsockname()[1], flush=True)
while True:
    c, _ = s.accept()
    data = c.recv(100)
    if data:
        c.sendall(b"PONG:" + data)
    c.close()
    if data == b"quit":
        break
"""


def test_ssh_local_port_forward(sshd_server):
    remote = subprocess.Popen(
        sshd_server.argv("python3", "-c", shlex.quote(ECHO_SERVER)), stdout=subprocess.PIPE, text=True
    )
    tunnel = None
    try:
        remote_port = int(remote.stdout.readline())
        local_port = free_port()
        tunnel = subprocess.Popen(
            sshd_server.argv(
                extra=(
                    "-N",
                    "-o",
                    "ExitOnForwardFailure=yes",
                    "-L",
                    f"{LOOPBACK}:{local_port}:{LOOPBACK}:{remote_port}",
                )
            )
        )
        deadline = time.monotonic() + 20
        reply = b""
        while not reply.startswith(b"PONG:"):
            assert tunnel.poll() is None, "ssh -L exited"
            assert time.monotonic() < deadline, "the forward never answered"
            try:
                with socket.create_connection((LOOPBACK, local_port), timeout=5) as s:
                    s.sendall(b"ping")
                    reply = s.recv(100)
            except OSError:
                time.sleep(0.05)
        assert reply == b"PONG:ping"
        with socket.create_connection((LOOPBACK, local_port), timeout=5) as s:
            s.sendall(b"quit")
            assert s.recv(100) == b"PONG:quit"
        assert remote.wait(20) == 0
    finally:
        for p in (tunnel, remote):
            if p is not None and p.poll() is None:
                p.terminate()
                p.wait(10)


# --------------------------------------------------------------------------
# dciodvfy


def test_dciodvfy_corpus_sr_and_seg(dciodvfy, corpus):
    errors, warnings = dciodvfy(corpus / "sr/sr.dcm")
    assert errors == []
    assert "CodingSchemeDesignator is deprecated - attribute <CodingSchemeDesignator> = <SRT>" in warnings
    errors, warnings = dciodvfy(corpus / "seg_pm/liver.dcm")
    assert errors == []
    assert any("Retired Person Name form" in w for w in warnings)
    errors, _ = dciodvfy(corpus / "sr/test-SR.dcm")
    assert 'Illegal root for UID - "9.8.7.6" in (0x0008,0x1155) Referenced SOP Instance UID' in errors


def test_dciodvfy_finds_a_broken_written_seg(dciodvfy, corpus, tmp_path):
    ds = pydicom.dcmread(corpus / "seg_pm/liver.dcm")
    del ds.SegmentSequence  # Type 1 in the Segmentation Image Module
    ds.save_as(tmp_path / "broken_seg.dcm")
    errors, _ = dciodvfy(tmp_path / "broken_seg.dcm")
    assert "Missing attribute Type 1 Required Element=<SegmentSequence> Module=<SegmentationImage>" in errors
    with pytest.raises(FileNotFoundError):
        dciodvfy(tmp_path / "missing.dcm")
