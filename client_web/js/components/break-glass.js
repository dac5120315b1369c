// "No access — request emergency access": what an expert sees on a study they hold no grant for.
// Posting a reason takes a short break-glass grant (POST /api/studies/{uid}/break-glass); the
// server audits it and every view under it. The reason is required: it is what an auditor reads.

import { apiJson } from "../lib/api.js";
import { applyI18n, t } from "../lib/i18n.js";
import "../i18n/viewer.js";

const MIN_REASON = 4; // server/auth/access.py MIN_REASON_CHARS

/** Show the panel in `root`; `onGranted()` runs once the grant is taken. */
export function showBreakGlass(root, studyUid, onGranted) {
  let panel = root.querySelector('[data-testid="break-glass-panel"]');
  if (panel) panel.remove();
  panel = document.createElement("section");
  panel.className = "break-glass";
  panel.dataset.testid = "break-glass-panel";
  panel.innerHTML = `
    <h2 data-i18n="breakGlass.heading"></h2>
    <p data-i18n="breakGlass.explain"></p>
    <label for="break-glass-reason" data-i18n="breakGlass.reason"></label>
    <textarea id="break-glass-reason" data-testid="break-glass-reason" rows="3" maxlength="500"
              data-i18n-placeholder="breakGlass.placeholder"></textarea>
    <p class="error" data-testid="break-glass-error" role="alert" hidden></p>
    <button type="button" data-testid="break-glass-submit" data-i18n="breakGlass.submit"></button>`;
  root.appendChild(panel);
  applyI18n(panel);
  const reason = panel.querySelector('[data-testid="break-glass-reason"]');
  const error = panel.querySelector('[data-testid="break-glass-error"]');
  const submit = panel.querySelector('[data-testid="break-glass-submit"]');
  const fail = (text) => {
    error.textContent = text;
    error.hidden = false;
  };
  submit.addEventListener("click", async () => {
    const text = reason.value.trim();
    if (text.length < MIN_REASON) {
      fail(t("breakGlass.needReason"));
      reason.focus();
      return;
    }
    submit.disabled = true;
    error.hidden = true;
    try {
      await apiJson(`/api/studies/${encodeURIComponent(studyUid)}/break-glass`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ reason: text }),
      });
    } catch (err) {
      submit.disabled = false;
      fail(t("breakGlass.failed", { message: err }));
      return;
    }
    panel.remove();
    onGranted();
  });
}
