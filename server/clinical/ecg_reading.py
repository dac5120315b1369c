"""ECG reading (issue #11 items 4-5): an uploaded ECG goes onto the ECG readers' worklist at
once, a suspected-critical one first and with an alert to the on-duty ECG readers. Domain only.

After a STOW-RS or kiosk upload stored new ECG instances, each study holding one becomes a
reading request of the ECG department (`ECG_DEPARTMENT`, when the directory has it) through
the worklist (server/clinical/worklist.py: grants, audit, live announcement, `worklist.item`
notification); the request carries the pre-screening flags (suspected critical first in the
list, priority emergency). A suspected-critical ECG also notifies the department's readers
(`ecg.suspected_critical`, notifications §0): the pre-screening is a suspicion, a reader
confirms it and raises the critical value (alerts, server/clinical/alerts.py).
"""

from __future__ import annotations

import logging
from typing import Any

from server.auth.principal import Principal
from server.clinical.worklist import ReadingRequest, WorklistService
from server.log import event
from server.store import Store
from server.store.worklist import Priority, WorkItem

log = logging.getLogger(__name__)

#: The department whose experts read ECGs (the demo's "心电图室 ECG Reading Room").
ECG_DEPARTMENT = "ecg"
_REASON_TEXT = {
    "vt": "sustained wide-complex tachycardia / 持续性宽QRS心动过速",
    "rate": "heart rate >= 180/min / 心率≥180次/分",
    "pause": "pause / 停搏",
    "vf": "ventricular fibrillation / flutter / 心室颤动/扑动",
    "st_elevation": "ST elevation / ST段抬高",
    "device": "device statement / 设备提示",
    "unscreened": "not screened (screening failed) / 未能自动筛查",
}


def _question(ecg: dict[str, Any]) -> str:
    screening = ecg.get("screening") or {}
    parts = [f"{ecg.get('iod', 'ECG')}: please read / 请阅读心电图"]
    if screening.get("suspected_critical"):
        reasons = [_REASON_TEXT.get(str(r.get("code")), str(r.get("code")))
                   for r in screening.get("reasons", [])]
        parts.append("SUSPECTED CRITICAL (pre-screening) / 疑似危急值: " + "; ".join(reasons))
    if screening.get("heart_rate"):
        parts.append(f"HR {round(screening['heart_rate'])}/min")
    return " — ".join(parts)[:1000]


async def request_readings(store: Store, worklist: WorklistService, notifier: Any,
                           who: Principal, clinic: str, stored: list[tuple[str, str]]
                           ) -> list[WorkItem]:
    """`stored`: (StudyInstanceUID, SOPInstanceUID) of the instances just stored (not
    duplicates). Returns the reading requests made."""
    if await store.directory.get_department(ECG_DEPARTMENT) is None:
        return []
    ecgs: dict[str, dict[str, Any]] = {}
    for study_uid, sop_uid in stored:
        record = await store.studies.instance(clinic, study_uid, sop_uid)
        if record is None or record.ecg is None:
            continue
        current = ecgs.get(study_uid)
        flagged = bool((record.ecg.get("screening") or {}).get("suspected_critical"))
        if current is None or (flagged and not current["screening"].get("suspected_critical")):
            ecgs[study_uid] = {**record.ecg, "sop_uid": sop_uid}
    made = []
    for study_uid, ecg in ecgs.items():
        screening = ecg.get("screening") or {}
        critical = bool(screening.get("suspected_critical"))
        item = await worklist.request(who, ReadingRequest(
            study_uid=study_uid, question=_question(ecg),
            priority=Priority.EMERGENCY if critical else Priority.ROUTINE,
            department=ECG_DEPARTMENT))
        made.append(item)
        event(log, "ecg_reading_requested", item=item.id, clinic=clinic, critical=critical)
        if critical and notifier is not None:
            from server.notifications import Audience

            await notifier.notify(Audience(departments=(ECG_DEPARTMENT,)),
                                  "ecg.suspected_critical", {
                "item_id": item.id, "study_uid": study_uid, "sop_instance_uid": ecg["sop_uid"],
                "clinic": clinic, "clinic_name": item.clinic_name,
                "patient_name": item.patient_name,
                "reasons": [r.get("code") for r in screening.get("reasons", [])],
                "heart_rate": screening.get("heart_rate")}, exclude=who.username)
    return made
