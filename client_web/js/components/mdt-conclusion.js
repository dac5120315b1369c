// Recording one agenda case's conclusion (diagnosis, plan, responsible department, follow-up
// date) in a dialog: the MDT room page offers it to the coordinator and the lead expert
// (PUT /api/mdt/<id>/cases/<case>/conclusion; the server decides who may).

import { t } from "../lib/i18n.js";
import { apiJson } from "../lib/api.js";
import { el } from "../lib/dom.js";
import { describeError } from "../messages.js";
import "../i18n/mdt-invitations.js";

let dialog = null;

/** Resolves with the server's answer ({mdt, names, may}) once saved, or null if cancelled. */
export async function recordConclusion(mdtId, c, label = "") {
  let departments = [];
  try {
    departments = (await apiJson("/api/departments")).departments;
  } catch {
    departments = [];
  }
  if (dialog) dialog.remove();
  dialog = el("dialog", { className: "mdt-propose", testid: "mdt-conclusion-dialog" });
  const done = c.conclusion || {};
  const area = (testid, value) => el("textarea", { rows: 3, maxLength: 4000, required: true,
    value: value || "", dataset: { testid } });
  const diagnosis = area("mdt-conclusion-diagnosis", done.diagnosis);
  const plan = area("mdt-conclusion-plan", done.plan);
  const dep = el("select", { dataset: { testid: "mdt-conclusion-department" } },
    ...departments.map((d) => el("option", { value: d.id,
      textContent: t(`dept.${d.id}`) === `dept.${d.id}` ? d.name : t(`dept.${d.id}`) })));
  if (done.responsible_department) dep.value = done.responsible_department;
  const followUp = el("input", { type: "date", value: done.follow_up_date || "",
    dataset: { testid: "mdt-conclusion-followup" } });
  const status = el("div", { testid: "mdt-conclusion-status", role: "status" });
  const save = el("button", { type: "submit", className: "primary", testid: "mdt-conclusion-save",
    textContent: t("mdtcon.save") });
  const field = (key, input) => el("div", { className: "field" },
    el("label", { textContent: t(`mdtcon.${key}`) }), input);
  const form = el("form", { method: "dialog" },
    el("h2", { textContent: t("mdtcon.heading") }),
    label ? el("p", { className: "mdt-muted", textContent: label }) : "",
    field("diagnosis", diagnosis), field("plan", plan), field("department", dep),
    field("followUp", followUp), status,
    el("div", { className: "mdt-actions" }, save,
      el("button", { type: "button", testid: "mdt-conclusion-cancel", textContent: t("mdtprop.cancel"),
        onclick: () => dialog.close() })));
  dialog.append(form);
  document.body.append(dialog);
  return new Promise((resolve) => {
    let answer = null;
    dialog.addEventListener("close", () => resolve(answer));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      save.disabled = true;
      try {
        answer = await apiJson(`/api/mdt/${encodeURIComponent(mdtId)}/cases/${encodeURIComponent(c.case_id)}/conclusion`, {
          method: "PUT", headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ diagnosis: diagnosis.value.trim(), plan: plan.value.trim(),
            responsible_department: dep.value, follow_up_date: followUp.value }),
        });
        dialog.close();
      } catch (err) {
        status.className = "msg error";
        status.dataset.code = err.code || "";
        status.textContent = t("mdtcon.failed", { message: describeError(err) });
      } finally {
        save.disabled = false;
      }
    });
    dialog.showModal();
    diagnosis.focus();
  });
}
