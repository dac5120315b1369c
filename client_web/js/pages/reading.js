// reading.html?request=<reading request id>: the reading page of the worklist (issue #10.2):
// the study in the viewer beside the report editor. Opening it opens (or creates) the report of
// the request — only the expert holding the request's claim may write and sign it; anyone else
// who may read it sees its signed versions. "Key image" adds the image the viewer shows.

import { t } from "../lib/i18n.js";
import { el, testIds } from "../lib/dom.js";
import { apiJson, values } from "../lib/api.js";
import { mountShell } from "../components/shell.js";
import { Viewer, viewerMarkup } from "../components/viewer/viewer.js";
import { ReportEditor, openReport } from "../components/report-editor.js";
import { ecgMarkup, mountEcgViewer } from "../components/ecg/viewer.js";
import "../i18n/reports.js";
import "../i18n/viewer.js";

const $ = testIds();
let viewer = null;
let editor = null;

function status(key, params = {}) {
  $("reading-status").textContent = key ? t(key, params) : "";
  $("reading-status").dataset.key = key || "";
}

/** An ECG-only study is read in the ECG viewer (calipers, true scale), anything else in the
 * image viewer. */
async function mountStudy(studyUid) {
  let modalities = [];
  try {
    const found = await apiJson(
      `/dicomweb/studies?StudyInstanceUID=${encodeURIComponent(studyUid)}`,
      { headers: { Accept: "application/dicom+json" } });
    modalities = Array.isArray(found) && found[0] ? values(found[0], "00080061") : [];
  } catch {
    modalities = []; // the image viewer says what is wrong
  }
  if (modalities.length && modalities.every((m) => m === "ECG")) {
    const root = el("div", { className: "ecg-embedded" });
    root.innerHTML = ecgMarkup();
    $("reading-study").append(root);
    window.huizhenEcg = mountEcgViewer(root, studyUid);
    window.huizhenEcg.start();
    return;
  }
  mountViewer(studyUid);
}

function mountViewer(studyUid) {
  const root = el("div", { className: "viewer embedded" });
  root.innerHTML = viewerMarkup();
  $("reading-study").append(root);
  viewer = new Viewer(root, studyUid, { globalKeys: false, setTitle: false });
  viewer.fitToolbar();
  window.huizhenViewer = viewer;
  viewer.start().catch((err) => viewer.status(t("viewer.error", { message: err.message }), true));
}

async function start() {
  const params = new URLSearchParams(window.location.search);
  const request = params.get("request");
  const reportId = params.get("report");
  status("reading.loading");
  try {
    const report = reportId && /^[0-9a-f]{16}$/.test(reportId)
      ? await apiJson(`/api/reports/${reportId}`)
      : await openReport("reading", request || "");
    status(null);
    if (report.subject.study_uid) mountStudy(report.subject.study_uid);
    editor = new ReportEditor($("reading-editor"), report);
    window.huizhenReport = editor; // for tests and field diagnosis
    if (report.may_edit) {
      const add = el("button", { type: "button", testid: "reading-key-image",
        onclick: () => editor.addKeyImage(viewer && viewer.getViewState()) }, t("reading.keyImage"));
      $("reading-editor").prepend(add);
    }
  } catch (err) {
    status("reading.error", { message: err.message });
  }
}

const shell = mountShell({
  title: "reading.title",
  signIn: false,
  loginPage: `expert.html`,
  userDetail: (u) => (u.department ? ` · ${t(`dept.${u.department}`)}` : ""),
  onSession: () => start(),
  onLangChange: () => editor && editor.render(),
});
shell.start();
