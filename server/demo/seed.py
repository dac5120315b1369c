"""`huizhen demo`: demo clinics, people of every role, a kiosk, and studies to read.

Idempotent: running it again keeps what exists, refreshes the demo passwords and reports what it
really added (nothing, the second time).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from media.ecg.synthetic import Spec, ecg_dataset
from server.auth.passwords import hash_password
from server.auth.principal import Principal
from server.clinical.ecg_reading import ECG_DEPARTMENT, request_readings
from server.clinical.worklist import WorklistService
from server.config import Settings
from server.demo.phantom import cr_monochrome1_phantom, ct_phantom_series
from server.errors import Conflict
from server.ingest import Ingestor, SpooledFile
from server.log import event
from server.mdt.models import CaseRef, MdtCreate, ProposalCreate
from server.mdt.service import MdtService
from server.notifications import Notifier
from server.realtime.hub import Hub
from server.store import Store
from server.store.directory import Role
from server.store.grants import DEMO
from server.store.referrals import Direction

log = logging.getLogger(__name__)

#: pydicom's sample files live in a clinic of their own, labelled as test samples: they cover
#: codecs and modalities, they are not patients of a township clinic.
SAMPLES_CLINIC = "samples"
CLINICS = {
    "qingshui": "青水乡卫生院 Qingshui Township Health Center",
    "hetang": "荷塘乡卫生院 Hetang Township Health Center",
    SAMPLES_CLINIC: "测试样例 Test samples (pydicom files, not patients)",
}
DEPARTMENTS = {
    "radiology": "影像科 Radiology",
    "neurology": "神经内科 Neurology",
    "respiratory": "呼吸内科 Respiratory Medicine",
    # The county's remote ECG centre: reads the townships' ECGs (server/clinical/ecg_reading.py).
    ECG_DEPARTMENT: "心电图室 ECG Centre",
}


@dataclass(frozen=True)
class DemoUser:
    username: str
    display_name: str
    role: Role
    clinic: str | None = None
    department: str | None = None


USERS = (
    DemoUser("dr.li", "李医生 Dr. Li", Role.DOCTOR, clinic="qingshui"),
    DemoUser("dr.wang", "王医生 Dr. Wang", Role.DOCTOR, clinic="hetang"),
    DemoUser("dr.test", "测试样例医生 Test-sample doctor", Role.DOCTOR, clinic=SAMPLES_CLINIC),
    DemoUser("exp.zhang", "张主任 Prof. Zhang", Role.EXPERT, department="radiology"),
    DemoUser("exp.chen", "陈主任 Prof. Chen", Role.EXPERT, department="neurology"),
    DemoUser("exp.huang", "黄医生 Dr. Huang (ECG reader)", Role.EXPERT,
             department=ECG_DEPARTMENT),
    DemoUser("coord.liu", "刘协调员 Coordinator Liu", Role.COORDINATOR),
    DemoUser("admin", "管理员 Administrator", Role.ADMIN),
    DemoUser("audit.zhou", "周审计员 Auditor Zhou", Role.AUDITOR),
)
#: Referral agreements (双向转诊) between the township clinics and the county departments:
#: (clinic, department), both directions. Hetang refers to neurology only.
REFERRAL_ROUTES = (
    ("qingshui", "radiology"), ("qingshui", "neurology"), ("qingshui", "respiratory"),
    ("hetang", "neurology"),
)
DEMO_CT_STUDY_UID = "1.2.826.0.1.3680043.8.498.20261120.1"
DEMO_CR_STUDY_UID = "1.2.826.0.1.3680043.8.498.20261120.2"
DEMO_HETANG_CR_STUDY_UID = "1.2.826.0.1.3680043.8.498.20261120.3"
DEMO_ECG_STEMI_STUDY_UID = "1.2.826.0.1.3680043.8.498.20261120.4"
DEMO_ECG_NSR_STUDY_UID = "1.2.826.0.1.3680043.8.498.20261120.5"


@dataclass(frozen=True)
class DemoPatient:
    """A made-up patient of a township clinic: the ID in the clinic's own style, the name as
    DICOM PN with its ideographic group (what a Chinese modality stores)."""

    patient_id: str
    patient_name: str
    patient_sex: str
    birth_date: str


# Invented people (any likeness is chance); IDs: clinic prefix, year of registration, number.
CT_PATIENT = DemoPatient("QS-2024-0815", "Wang^Xiaoming=王^小明", "M", "19620314")
CR_PATIENT = DemoPatient("QS-2024-0816", "Li^Xiuying=李^秀英", "F", "19580702")
HETANG_PATIENT = DemoPatient("HT-2023-0321", "Zhao^Guilan=赵^桂兰", "F", "19700911")
# Resting 12-lead ECGs (media/ecg/synthetic.py): an acute anterior STEMI and a normal one.
ECG_STEMI_PATIENT = DemoPatient("QS-2025-0107", "Zhou^Jianguo=周^建国", "M", "19580312")
ECG_NSR_PATIENT = DemoPatient("QS-2025-0108", "Sun^Meili=孙^美丽", "F", "19750620")
# Files that ship inside pydicom: other modalities, colour, multi-frame and every compressed
# transfer syntax we decode. Several share UIDs (or lack them), so each demo copy gets UIDs of its
# own, derived from its name so that re-running the demo stays idempotent.
PYDICOM_FILES = (
    "CT_small.dcm",                  # CT, explicit VR little endian
    "MR_small.dcm",                  # MR
    "JPEG2000.dcm",                  # JPEG 2000
    "JPGExtended.dcm",               # JPEG extended, 12-bit
    "MR_small_jpeg_ls_lossless.dcm",  # JPEG-LS lossless
    "MR_small_RLE.dcm",              # RLE lossless
    "SC_rgb_jpeg_dcmtk.dcm",         # JPEG baseline, YBR_FULL colour
    "SC_rgb_rle_2frame.dcm",         # RLE colour, 2 frames
    "examples_ybr_color.dcm",        # YBR colour, multi-frame
    "rtdose_rle.dcm",                # RT dose, RLE, 15 frames
)
ACCOUNTS_FILE = "demo_accounts.json"
DEMO_GRANT_TTL_S = 365 * 24 * 3600


def demo_password(settings: Settings, given: str | None) -> str:
    """HUIZHEN_DEMO_PASSWORD / --password, else the one generated by an earlier run, else new."""
    if given:
        return given
    path = settings.data_dir / ACCOUNTS_FILE
    if path.exists():
        return json.loads(path.read_text())["password"]
    return secrets.token_urlsafe(9)


def _write_accounts(settings: Settings, password: str, kiosk_token: str | None) -> Path:
    path = settings.data_dir / ACCOUNTS_FILE
    previous = json.loads(path.read_text()) if path.exists() else {}
    data = {
        "password": password,
        "users": [u.username for u in USERS],
        "kiosk_device_token": kiosk_token or previous.get("kiosk_device_token"),
    }
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2)
    return path


async def seed(settings: Settings, store: Store, password: str, *, ct_slices: int = 120) -> dict:
    directory = store.directory
    for cid, name in CLINICS.items():
        if await directory.get_clinic(cid) is None:
            await directory.add_clinic(name, cid)
    for did, name in DEPARTMENTS.items():
        if await directory.get_department(did) is None:
            await directory.add_department(name, did)
    loop = asyncio.get_running_loop()
    accounts_added = 0
    with ThreadPoolExecutor(2) as pool:
        pw_hash = await loop.run_in_executor(pool, hash_password, password)
        for u in USERS:
            try:
                await directory.add_user(
                    u.username,
                    role=u.role,
                    password_hash=pw_hash,
                    display_name=u.display_name,
                    clinic=u.clinic,
                    department=u.department,
                )
                accounts_added += 1
            except Conflict:
                await directory.set_password_hash(u.username, pw_hash)
        # Prof. Zhang heads radiology: reassigns its reading requests, hears unacknowledged
        # critical alerts at the second escalation step (docs/clinical.md).
        await directory.set_department_head("radiology", "exp.zhang")
        await directory.set_department_head(ECG_DEPARTMENT, "exp.huang")
        kiosk_token = None
        accounts = settings.data_dir / ACCOUNTS_FILE
        if not accounts.exists() or not json.loads(accounts.read_text()).get("kiosk_device_token"):
            _, kiosk_token = await directory.add_device("Qingshui kiosk 1", "qingshui")
        _write_accounts(settings, password, kiosk_token)

        ingestor = Ingestor(settings, store, pool)
        stored = 0
        if await store.studies.study_owner("qingshui", DEMO_CT_STUDY_UID) is None:
            stored += await _ingest_datasets(
                ingestor,
                "qingshui",
                ct_phantom_series(slices=ct_slices, study_instance_uid=DEMO_CT_STUDY_UID,
                                  **asdict(CT_PATIENT)),
            )
        if await store.studies.study_owner("qingshui", DEMO_CR_STUDY_UID) is None:
            cr = cr_monochrome1_phantom(study_instance_uid=DEMO_CR_STUDY_UID, **asdict(CR_PATIENT))
            stored += await _ingest_datasets(ingestor, "qingshui", [cr])
        if await store.studies.study_owner("hetang", DEMO_HETANG_CR_STUDY_UID) is None:
            cr = cr_monochrome1_phantom(
                study_instance_uid=DEMO_HETANG_CR_STUDY_UID, accession_number="HT0001",
                study_date="20261118", seed=1, **asdict(HETANG_PATIENT),
            )
            stored += await _ingest_datasets(ingestor, "hetang", [cr])
        for uid, patient, condition, when in (
            (DEMO_ECG_STEMI_STUDY_UID, ECG_STEMI_PATIENT, "stemi", (2026, 11, 15, 8, 40)),
            (DEMO_ECG_NSR_STUDY_UID, ECG_NSR_PATIENT, "nsr", (2026, 11, 14, 9, 5)),
        ):
            if await store.studies.study_owner("qingshui", uid) is None:
                stored += await _ingest_datasets(
                    ingestor, "qingshui", [_demo_ecg(uid, patient, condition, when)])
        samples = [
            ds for ds in (_sample(i, name) for i, name in enumerate(PYDICOM_FILES, 1))
            if ds is not None
        ]
        stored += await _ingest_datasets(ingestor, SAMPLES_CLINIC, samples)
    # Experts and coordinators read only what they are granted: the demo grants them the
    # phantoms (a real deployment grants through consults; the test samples are not granted).
    for u in USERS:
        if u.role in (Role.EXPERT, Role.COORDINATOR):
            for clinic, uid in (("qingshui", DEMO_CT_STUDY_UID), ("qingshui", DEMO_CR_STUDY_UID),
                                ("hetang", DEMO_HETANG_CR_STUDY_UID),
                                ("qingshui", DEMO_ECG_STEMI_STUDY_UID),
                                ("qingshui", DEMO_ECG_NSR_STUDY_UID)):
                await store.grants.grant(u.username, clinic, uid, kind=DEMO, ref="seed",
                                         ttl_s=DEMO_GRANT_TTL_S)
    for clinic, dept in REFERRAL_ROUTES:
        for direction in Direction:
            await store.referrals.allow(direction, clinic, dept)
    mdt = await _demo_mdt(settings, store)
    ecg_requests = await _demo_ecg_readings(settings, store)
    event(log, "demo_seeded", stored=stored, mdt=mdt, ecg_requests=ecg_requests)
    return {"password": password, "stored": stored, "accounts_added": accounts_added}


#: The demo's scheduled MDT session (16 hex digits, fixed so a second run finds it).
DEMO_MDT_ID = "de00000000000001"


async def _demo_mdt(settings: Settings, store: Store) -> str:
    """One scheduled MDT tomorrow (the CT of Qingshui and the CR of Hetang on its agenda, two
    experts, coordinator Liu) and one more case proposed and waiting for the coordinator."""
    if await store.mdt.get(DEMO_MDT_ID) is not None:
        return ""
    service = MdtService(settings, store)

    async def principal(username: str) -> Principal:
        user = await store.directory.get_user(username)
        assert user is not None
        return Principal(user.username, user.role, user.clinic, user.department)

    li, wang, liu = [await principal(u) for u in ("dr.li", "dr.wang", "coord.liu")]
    ct = await service.propose(li, ProposalCreate(
        study_uids=[DEMO_CT_STUDY_UID], reason="Right upper lobe nodule, 14 mm: resect or "
        "follow? / 右上肺结节 14 mm，手术还是随访？", departments=["radiology", "respiratory"]))
    hetang = await service.propose(wang, ProposalCreate(
        study_uids=[DEMO_HETANG_CR_STUDY_UID], reason="Chest film: widened mediastinum / "
        "胸片：纵隔增宽", departments=["radiology"]))
    await service.propose(li, ProposalCreate(
        study_uids=[DEMO_CR_STUDY_UID], reason="Follow-up chest film after pneumonia / "
        "肺炎后复查胸片", departments=["respiratory"]))
    tomorrow = (int(time.time()) // 3600 + 24) * 3600
    await service.create(liu, MdtCreate(
        title="Thoracic MDT / 胸部多学科会诊", starts_at=tomorrow, duration_min=60,
        departments=["radiology", "respiratory"], experts=["exp.zhang", "exp.chen"],
        clinics=["qingshui", "hetang"], lead_expert="exp.zhang",
        cases=[CaseRef(proposal_id=ct.id), CaseRef(proposal_id=hetang.id)]),
        mdt_id=DEMO_MDT_ID)
    return DEMO_MDT_ID


async def _demo_ecg_readings(settings: Settings, store: Store) -> int:
    """The demo's ECGs on the ECG centre's worklist, as an upload puts them there: Dr Li's
    reading requests through the worklist (grants to the readers, the pre-screening's flags, so
    the STEMI is suspected critical and first; inbox notifications). Once: a study already on
    the clinic's worklist (open or done) is left alone, so a re-run adds nothing."""
    listed = {i.study_uid for i in await store.worklist.of_clinic("qingshui", limit=2000)}
    todo = [(uid, _demo_ecg_sop_uid(uid)) for uid in (DEMO_ECG_STEMI_STUDY_UID,
                                                      DEMO_ECG_NSR_STUDY_UID)
            if uid not in listed]
    if not todo:
        return 0
    li = await store.directory.get_user("dr.li")
    assert li is not None
    who = Principal(li.username, li.role, li.clinic, li.department)
    hub = Hub(store.redis)  # publish only (nobody listens during the seed), no subscriptions
    worklist = WorklistService(settings, store)
    notifier = Notifier(store, hub)
    # No sweeps registered: the seed only sends requests (the server's sweeper expires leases).
    await worklist.start(hub, lambda: notifier)
    try:
        made = await request_readings(store, worklist, notifier, who, "qingshui", todo)
    finally:
        await hub.close()
    return len(made)


def _demo_ecg_sop_uid(study_uid: str) -> str:
    return generate_uid(entropy_srcs=[study_uid, "sop"])


def _demo_ecg(study_uid: str, patient: DemoPatient, condition: str,
              when: tuple[int, ...]) -> pydicom.Dataset:
    """A synthetic 12-lead ECG with UIDs derived from its study (a re-run finds it again)."""
    ds = ecg_dataset(Spec(condition, rate=84 if condition == "stemi" else 68, seed=7),
                     patient_id=patient.patient_id, patient_name=patient.patient_name,
                     study_uid=study_uid, when=dt.datetime(*when))
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[study_uid, "series"])
    ds.SOPInstanceUID = _demo_ecg_sop_uid(study_uid)
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientSex = patient.patient_sex
    ds.PatientBirthDate = patient.birth_date
    ds.AccessionNumber = f"QE{study_uid[-1]}"
    return ds


def _sample(index: int, name: str) -> pydicom.Dataset | None:
    """A pydicom sample file as a labelled test sample: its own UIDs (derived from its name, so a
    re-run finds it again), patient "Test Sample" / SAMPLE-NN, and a description naming the file."""
    try:
        found = get_testdata_file(name, download=False)
    except (ValueError, OSError):
        return None
    if not found:
        return None
    ds = pydicom.dcmread(found)
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        # "samples": not the UIDs the copies had when they sat in a township clinic
        setattr(ds, keyword, generate_uid(entropy_srcs=["huizhen-demo-samples", name, keyword]))
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.SpecificCharacterSet = "ISO_IR 192"  # UTF-8, for the ideographic name
    ds.PatientName = "Test^Sample=测试^样例"
    ds.PatientID = f"SAMPLE-{index:02d}"
    ds.StudyDescription = f"Test sample: {name} (pydicom)"[:64]  # LO
    return ds


async def _ingest_datasets(ingestor: Ingestor, clinic: str, datasets) -> int:
    loop = asyncio.get_running_loop()
    async with ingestor.spool() as (spool, _budget):
        files = []
        for ds in datasets:
            path = spool.new_path()
            await loop.run_in_executor(ingestor.executor, _save, ds, path)
            files.append(SpooledFile(path, f"demo {ds.SOPInstanceUID}"))
        result = await ingestor.ingest(clinic, files)
    if result.failed:
        raise RuntimeError(f"demo data failed validation: {result.failed[0].message}")
    # what is really new: a re-run finds the samples already stored (duplicates)
    return sum(1 for s in result.stored if not s.duplicate)


def _save(ds: pydicom.Dataset, path: Path) -> None:
    ds.save_as(path, enforce_file_format=True)
