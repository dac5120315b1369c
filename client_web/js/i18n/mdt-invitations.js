// MDT invitations on the invitees' pages (js/components/mdt-invitations.js) and the
// "propose for MDT" dialog (js/components/mdt-propose.js).

import { addMessages } from "../lib/i18n.js";

addMessages({
  en: {
    "mdtinv.heading": "MDT meetings",
    "mdtinv.join": "Join the MDT",
    "mdtinv.joinFrom": "Join from {time}",
    "mdtinv.summary": "Summary",
    "mdtinv.pdf": "Summary PDF",
    "mdtinv.state.scheduled": "scheduled",
    "mdtinv.state.open": "open — you can join",
    "mdtinv.state.live": "live now",
    "mdtinv.state.concluded": "concluded",
    "mdtinv.state.cancelled": "cancelled",
    "mdtprop.open": "Propose for MDT",
    "mdtprop.heading": "Propose for an MDT meeting",
    "mdtprop.reason": "Why should the team discuss this case?",
    "mdtprop.departments": "Departments to involve",
    "mdtprop.submit": "Propose",
    "mdtprop.cancel": "Cancel",
    "mdtprop.done": "Proposed: a coordinator will put it on an MDT agenda.",
    "mdtprop.failed": "Could not propose: {message}",
  },
  zh: {
    "mdtinv.heading": "MDT 会诊",
    "mdtinv.join": "加入 MDT",
    "mdtinv.joinFrom": "{time} 起可加入",
    "mdtinv.summary": "纪要",
    "mdtinv.pdf": "纪要 PDF",
    "mdtinv.state.scheduled": "已安排",
    "mdtinv.state.open": "已开放，可加入",
    "mdtinv.state.live": "进行中",
    "mdtinv.state.concluded": "已结束",
    "mdtinv.state.cancelled": "已取消",
    "mdtprop.open": "提交 MDT",
    "mdtprop.heading": "提交多学科会诊（MDT）",
    "mdtprop.reason": "为什么需要团队讨论此病例？",
    "mdtprop.departments": "需要参与的科室",
    "mdtprop.submit": "提交",
    "mdtprop.cancel": "取消",
    "mdtprop.done": "已提交：协调员将安排进 MDT 议程。",
    "mdtprop.failed": "提交未成功：{message}",
  },
});
