// "Propose for MDT": a dialog on the study list and the expert workstation that proposes a
// study (its patient) for a multidisciplinary meeting (POST /api/mdt/proposals). A coordinator
// finds it on coordinator.html and puts it on an agenda.

import { t } from "../lib/i18n.js";
import { apiJson } from "../lib/api.js";
import { el } from "../lib/dom.js";
import { describeError } from "../messages.js";
import "../i18n/mdt-invitations.js";

let dialog = null;

async function departments() {
  try {
    return (await apiJson("/api/departments")).departments;
  } catch {
    return [];
  }
}

/** Opens the dialog for these StudyInstanceUIDs (one patient); `label` names the study. */
export async function proposeForMdt(studyUids, label = "") {
  if (dialog) dialog.remove();
  dialog = el("dialog", { className: "mdt-propose", testid: "mdt-propose-dialog" });
  const reason = el("textarea", { rows: 3, maxLength: 2000, required: true,
    dataset: { testid: "mdt-propose-reason" } });
  const deps = el("fieldset", { className: "mdt-choice" },
    el("legend", { textContent: t("mdtprop.departments") }));
  for (const d of await departments()) {
    deps.append(el("label", { className: "mdt-check" },
      el("input", { type: "checkbox", value: d.id, dataset: { testid: "mdt-propose-department" } }),
      ` ${t(`dept.${d.id}`) === `dept.${d.id}` ? d.name : t(`dept.${d.id}`)}`));
  }
  const status = el("div", { testid: "mdt-propose-status", role: "status" });
  const submit = el("button", { type: "submit", className: "primary", testid: "mdt-propose-submit",
    textContent: t("mdtprop.submit") });
  const form = el("form", { method: "dialog" },
    el("h2", { textContent: t("mdtprop.heading") }),
    label ? el("p", { className: "mdt-muted", textContent: label }) : "",
    el("div", { className: "field" }, el("label", { textContent: t("mdtprop.reason") }), reason),
    deps, status,
    el("div", { className: "mdt-actions" }, submit,
      el("button", { type: "button", testid: "mdt-propose-cancel", textContent: t("mdtprop.cancel"),
        onclick: () => dialog.close() })));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    submit.disabled = true;
    try {
      await apiJson("/api/mdt/proposals", {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({
          study_uids: studyUids, reason: reason.value.trim(),
          departments: [...deps.querySelectorAll("input:checked")].map((x) => x.value),
        }),
      });
      status.className = "msg ok";
      status.dataset.state = "done";
      status.textContent = t("mdtprop.done");
      submit.hidden = true;
    } catch (err) {
      status.className = "msg error";
      status.dataset.state = "failed";
      status.dataset.code = err.code || "";
      status.textContent = t("mdtprop.failed", { message: describeError(err) });
    } finally {
      submit.disabled = false;
    }
  });
  dialog.append(form);
  document.body.append(dialog);
  dialog.showModal();
  reason.focus();
  return dialog;
}
