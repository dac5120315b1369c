// The parts every page's shell mounts once someone is signed in: `(shell) => void`, called once
// with the Shell (js/components/shell.js). A part puts itself in a slot (`shell.slot("badge")` in
// the top bar, `shell.slot("alerts")` below it) and may use the page WebSocket
// (`shell.connect()`, shared with the page) and `shell.session`. Add yours with one import and
// one line below; keep the others'.

import { mountAlertBanner } from "./alert-banner.js";
import { mdtInvitationsPart } from "./mdt-invitations.js";
import { notificationBadgePart } from "./notification-badge.js";
import { referralsPart } from "./referrals-panel.js";
import { workflowNavPart } from "./workflow-nav.js";

export const SHELL_PARTS = [];
SHELL_PARTS.push(mdtInvitationsPart);
SHELL_PARTS.push(notificationBadgePart);
SHELL_PARTS.push(referralsPart);
SHELL_PARTS.push(workflowNavPart); // worklist and register links on the workflow pages
SHELL_PARTS.push(mountAlertBanner); // critical-value alerts (every page, the "alerts" slot)
