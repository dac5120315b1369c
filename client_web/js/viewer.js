// viewer.html?study=<StudyInstanceUID>: the top bar around the viewer component (viewer-core.js).

import { applyI18n, t, toggleLang } from "./i18n.js";
import { getSession, goToLogin, logout, watchExpiry } from "./api.js";
import { Viewer, viewerMarkup } from "./viewer-core.js";
import { showBreakGlass } from "./break-glass.js";

const $ = (testid) => document.querySelector(`[data-testid="${testid}"]`);

function main() {
  const root = document.querySelector(".viewer");
  // One copy of the viewer's markup, shared with the expert workstation.
  root.insertAdjacentHTML("beforeend", viewerMarkup());
  applyI18n(document);
  const session = getSession();
  if (!session) {
    goToLogin(null); // getSession() already left a message if the token had expired
    return;
  }
  watchExpiry(session);
  $("lang-toggle").addEventListener("click", toggleLang);
  $("logout").addEventListener("click", () => logout());
  $("back").addEventListener("click", () => window.location.assign("index.html"));
  const study = new URLSearchParams(window.location.search).get("study");
  const viewer = new Viewer(root, study);
  window.huizhenViewer = viewer; // for debugging from the console and for tests
  if (session.user && session.user.role === "expert") {
    viewer.onNoAccess = () => {
      viewer.status("");
      // Granted: a fresh page load opens the study like any other (no half-started viewer).
      showBreakGlass(root, study, () => window.location.reload());
    };
  }
  viewer.start().catch((err) => viewer.status(t("viewer.error", { message: err.message }), true));
}

main();
