// print.html?src=<API path>: the one printable page for every document of the server
// (server/documents/: reports, consult opinions, MDT summaries). It fetches the document's JSON
// (`Document.to_json()`) in the page's language, lays it out on an A4 sheet (css/print.css) and
// prints it; "Download PDF" fetches the PDF twin of the same path (…/document → …/pdf, or
// …/summary → …/summary.pdf).

import { apiFetch, apiJson } from "../lib/api.js";
import { getLang, t } from "../lib/i18n.js";
import { el, testIds } from "../lib/dom.js";
import { mountShell } from "../components/shell.js";
import "../i18n/reports.js";

const $ = testIds();
// Only the server's own API paths: never another origin, never a protocol-relative URL.
const SRC = /^\/api\/[A-Za-z0-9/_.-]+(\?[A-Za-z0-9=&_.%-]*)?$/;

function source() {
  const src = new URLSearchParams(window.location.search).get("src") || "";
  return SRC.test(src) && !src.includes("..") ? src : null;
}

function withLang(src) {
  const url = new URL(src, window.location.origin);
  url.searchParams.set("lang", getLang());
  return url.pathname + url.search;
}

/** The PDF twin of a document path: …/document → …/pdf (reports), else path + ".pdf" (the
 * MDT summary: /api/mdt/{id}/summary → /api/mdt/{id}/summary.pdf). */
function pdfPath(src) {
  if (!src) return null;
  const url = new URL(src, window.location.origin);
  url.pathname = url.pathname.endsWith("/document")
    ? url.pathname.replace(/\/document$/, "/pdf") : `${url.pathname}.pdf`;
  url.searchParams.set("lang", getLang());
  return url.pathname + url.search;
}

function status(key, params = {}) {
  $("print-status").textContent = key ? t(key, params) : "";
  $("print-status").dataset.key = key || "";
}

function render(doc) {
  $("print-institution").textContent = doc.institution || "";
  $("print-title").textContent = doc.title || "";
  $("print-subtitle").textContent = doc.subtitle || "";
  $("print-watermark").hidden = !doc.watermark;
  $("print-watermark").textContent = doc.watermark || "";
  const meta = $("print-meta");
  meta.textContent = "";
  for (const m of doc.meta || []) {
    meta.append(el("tr", {}, el("th", {}, m.label), el("td", {}, m.value)));
  }
  const sections = $("print-sections");
  sections.textContent = "";
  for (const s of doc.sections || []) {
    const sec = el("section", { className: "paper-section", testid: "print-section" });
    if (s.heading) sec.append(el("h2", {}, s.heading));
    for (const p of s.paragraphs || []) sec.append(el("p", {}, p));
    if ((s.rows || []).length) {
      const table = el("table", { className: "paper-table" });
      s.rows.forEach((row, i) => {
        const cell = s.header_row && i === 0 ? "th" : "td";
        table.append(el("tr", {}, ...row.map((c) => el(cell, {}, c))));
      });
      sec.append(table);
    }
    sections.append(sec);
  }
  const images = $("print-images");
  images.textContent = "";
  for (const im of doc.images || []) {
    const src = /^(data:image\/png;base64,|\/)/.test(im.src) ? im.src : "";
    const img = el("img", { src, alt: im.caption || "" });
    const fig = el("figure", { testid: "print-image" }, img, el("figcaption", {}, im.caption || ""));
    if (im.width_mm && im.height_mm) { // a true-scale ECG tracing: 1 mm of grid = 1 mm of paper
      fig.className = "paper-scaled";
      fig.dataset.testid = "print-tracing";
      img.style.width = `${Number(im.width_mm)}mm`;
      img.style.height = `${Number(im.height_mm)}mm`;
    }
    images.append(fig);
  }
  $("print-images-section").hidden = !(doc.images || []).length;
  $("print-images-heading").textContent = (doc.labels && doc.labels.images) || "";
  const v = doc.verification;
  $("print-verification").textContent = v
    ? `${doc.labels.verification}: ${v.code}    ${doc.labels.verify_at}: ${
      v.url.startsWith("/") ? window.location.origin + v.url : v.url}`
    : "";
  $("print-verification").dataset.code = v ? v.code : "";
  $("print-footer").textContent = doc.footer || "";
  document.documentElement.lang = doc.lang === "zh" ? "zh-CN" : "en";
  $("print-document").hidden = false;
  $("print-document").dataset.lang = doc.lang;
}

async function load() {
  const src = source();
  if (!src) {
    status("print.bad_src");
    return;
  }
  status("print.loading");
  try {
    render(await apiJson(withLang(src)));
    status(null);
    $("print-pdf").hidden = !pdfPath(src);
  } catch (err) {
    status("print.error", { message: err.message });
  }
}

async function downloadPdf() {
  const path = pdfPath(source());
  if (!path) return;
  try {
    const blob = await (await apiFetch(path)).blob();
    const url = URL.createObjectURL(blob);
    const a = el("a", { href: url, download: `${path.split("/").slice(-2, -1)[0]}.pdf` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  } catch (err) {
    status("print.error", { message: err.message });
  }
}

const shell = mountShell({
  title: "app.title",
  signIn: false,
  loginPage: "index.html",
  onSession: () => load(),
  onLangChange: () => load(),
});
$("print-print").addEventListener("click", () => window.print());
$("print-pdf").addEventListener("click", downloadPdf);
shell.start();
