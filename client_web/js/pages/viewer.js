// viewer.html?study=<StudyInstanceUID>: the page shell's top bar (back, patient line) around the
// viewer component (js/components/viewer/).

import { t } from "../lib/i18n.js";
import { Viewer, viewerMarkup } from "../components/viewer/viewer.js";
import { mountAnnotations } from "../components/viewer/annotations.js";
import { showBreakGlass } from "../components/break-glass.js";
import { mountShell } from "../components/shell.js";

const LEAD = `
  <button type="button" data-testid="back" data-i18n-aria-label="viewer.back.aria">
    <span aria-hidden="true">←</span> <span data-i18n="viewer.back">Studies</span>
  </button>
  <div class="patient-head">
    <span class="name" data-testid="patient-head"></span>
    <span class="sub" data-testid="study-head"></span>
  </div>`;

function main() {
  const root = document.querySelector(".viewer");
  // One copy of the viewer's markup, shared with the expert workstation and the MDT room.
  root.insertAdjacentHTML("beforeend", viewerMarkup());
  const shell = mountShell({
    container: root,
    lead: LEAD,
    signIn: false, // the study list signs in; a session that ends returns there
    onSession: (session) => {
      const study = new URLSearchParams(window.location.search).get("study");
      const viewer = new Viewer(root, study);
      window.huizhenViewer = viewer; // for debugging from the console and for tests
      // annotations and measurements, shared with everyone who may see the study
      window.huizhenAnnotations = mountAnnotations(viewer, {
        username: (session.user && session.user.username) || "",
      });
      viewer.fitToolbar(); // with the annotation tools in it
      if (session.user && session.user.role === "expert") {
        viewer.onNoAccess = () => {
          viewer.status("");
          // Granted: a fresh page load opens the study like any other (no half-started viewer).
          showBreakGlass(root, study, () => window.location.reload());
        };
      }
      viewer.start().catch((err) => viewer.status(t("viewer.error", { message: err.message }), true));
    },
  });
  shell.$("back").addEventListener("click", () => window.location.assign("index.html"));
  shell.start();
}

main();
