// ecg.html?study=<uid>[&instance=<uid>]: the diagnostic ECG viewer (js/components/ecg/viewer.js)
// inside the page shell's top bar (back button, patient line).

import { mountShell } from "../components/shell.js";
import { ecgMarkup, mountEcgViewer } from "../components/ecg/viewer.js";

const LEAD = `
  <button type="button" data-testid="back" data-i18n-aria-label="ecg.back.aria">
    <span aria-hidden="true">←</span> <span data-i18n="ecg.back">Studies</span>
  </button>
  <div class="patient-head">
    <span class="name" data-testid="patient-head"></span>
    <span class="sub" data-testid="study-head"></span>
  </div>`;

function main() {
  const root = document.querySelector(".ecg-root");
  root.insertAdjacentHTML("beforeend", ecgMarkup());
  const params = new URLSearchParams(window.location.search);
  let ecg = null;
  const shell = mountShell({
    container: root,
    lead: LEAD,
    signIn: false, // the study list signs in; a session that ends returns there
    onSession: () => {
      ecg = mountEcgViewer(root, params.get("study"), {
        instance: params.get("instance"),
        onPatient: (name, detail) => {
          shell.$("patient-head").textContent = name;
          shell.$("study-head").textContent = detail;
        },
      });
      window.huizhenEcg = ecg; // for tests and the console
      ecg.start();
    },
    onLangChange: () => ecg && ecg.renderText(),
  });
  shell.$("back").addEventListener("click", () => window.location.assign("index.html"));
  shell.start();
}

main();
