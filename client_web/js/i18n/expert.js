// The expert workstation page (expert.html).

import { addMessages } from "../lib/i18n.js";

addMessages({
  en: {
    "expert.calledBy": "from {name}",
    "expert.studyAttached": "Study attached",
    "expert.noStudyAttached": "No study attached",
    "expert.requestLeft": "Request left while no one was online",
    "expert.requests": "Consult requests",
    "expert.none": "No consult requests right now. New requests ring here.",
    "expert.accept": "Accept",
    "expert.accepting": "Joining…",
    "expert.taken": "Another expert took this consult.",
    "expert.clinic": "Clinic",
    "expert.waitingFor": "waiting {t}",
    "expert.invitations": "Invitations",
    "expert.invitedBy": "{from} invites you to a consult",
    "expert.join": "Join",
    "expert.noStudy": "No study attached to this consult.",
    "expert.question": "Question",
    "expert.patient": "Patient",
  },
  zh: {
    "expert.calledBy": "来自{name}",
    "expert.studyAttached": "附带检查",
    "expert.noStudyAttached": "未附检查",
    "expert.requestLeft": "无人在线时留下的请求",
    "expert.requests": "会诊请求",
    "expert.none": "暂无会诊请求，新的请求会在这里响铃。",
    "expert.accept": "接诊",
    "expert.accepting": "正在加入…",
    "expert.taken": "该会诊已被其他专家接诊。",
    "expert.clinic": "卫生院",
    "expert.waitingFor": "已等待 {t}",
    "expert.invitations": "会诊邀请",
    "expert.invitedBy": "{from} 邀请您参加会诊",
    "expert.join": "加入",
    "expert.noStudy": "本次会诊未附带检查。",
    "expert.question": "问题",
    "expert.patient": "患者",
  },
});
