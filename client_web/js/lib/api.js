// Session handling and the one fetch wrapper every API call goes through.

import { describeError } from "../messages.js";
//
// The bearer token lives in sessionStorage (cleared when the kiosk browser closes) and is only
// ever sent in the Authorization header, never in a URL.

const SESSION_KEY = "hz.session";
const FLASH_KEY = "hz.flash";
let loginPage = "index.html";

/** Where `goToLogin()` goes: the kiosk and expert pages sign in on their own page. */
export function setLoginPage(url) {
  loginPage = url;
}

/**
 * An error answer of the server (or `network` when it could not be reached). `message` is the
 * text of `code` in the page's current language (js/messages.js), read each time, so a page
 * that shows `err.message` never shows the server's English; `serverMessage` keeps that English
 * for the console and support.
 */
export class ApiError extends Error {
  constructor(status, code, serverMessage = "", details = {}) {
    super(serverMessage || code || `HTTP ${status}`);
    this.name = "ApiError";
    this.status = status;
    // no JSON body (a proxy's error page): still a code the catalogue knows
    this.code = code || (status ? "http_error" : "network");
    this.serverMessage = serverMessage || "";
    this.details = details || {};
    Object.defineProperty(this, "message", { get: () => describeError(this), configurable: true });
  }

  toString() {
    return this.message;
  }
}

export function getSession() {
  let session = null;
  try {
    session = JSON.parse(sessionStorage.getItem(SESSION_KEY) || "null");
  } catch {
    session = null;
  }
  if (!session || !session.token) return null;
  if (session.expires_at && session.expires_at * 1000 <= Date.now()) {
    clearSession();
    setFlash("session.expired");
    return null;
  }
  return session;
}

export function saveSession(session) {
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
}

export function clearSession() {
  sessionStorage.removeItem(SESSION_KEY);
}

/** A message (an i18n key) for the sign-in page to show once. */
export function setFlash(key) {
  sessionStorage.setItem(FLASH_KEY, key);
}

export function takeFlash() {
  const key = sessionStorage.getItem(FLASH_KEY);
  sessionStorage.removeItem(FLASH_KEY);
  return key;
}

/** Leave for the sign-in page, telling it why. */
export function goToLogin(flashKey = "session.expired") {
  clearSession();
  if (flashKey) setFlash(flashKey);
  window.location.assign(loginPage);
}

/** Calls `goToLogin()` when the token's lifetime runs out while the page is open. */
export function watchExpiry(session) {
  if (!session || !session.expires_at) return;
  const ms = session.expires_at * 1000 - Date.now();
  // setTimeout overflows past ~24.8 days; tokens live hours.
  if (ms < 2 ** 31 - 1) setTimeout(() => goToLogin("session.expired"), Math.max(0, ms));
}

/** `Retry-After` as seconds (delta-seconds or an HTTP date), or null. */
function retryAfterSeconds(value) {
  if (!value) return null;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const when = Date.parse(value);
  return Number.isFinite(when) ? Math.max(0, Math.round((when - Date.now()) / 1000)) : null;
}

/** An ApiError from an error body `{"error": {code, message, details}}` and its headers. */
function apiErrorFrom(status, body, headers) {
  const e = (body && body.error) || {};
  const details = { ...(e.details || {}) };
  const retry = retryAfterSeconds(headers.get("Retry-After"));
  if (details.retry_after_s === undefined && retry !== null) details.retry_after_s = retry;
  return new ApiError(status, e.code || "", e.message || "", details);
}

async function errorFrom(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON (proxy error page): the status alone
  }
  return apiErrorFrom(response.status, body, response.headers);
}

/**
 * fetch() with the bearer token. Resolves to the Response when it is 2xx; throws ApiError
 * otherwise. A 401 on an authenticated call ends the session and returns to the sign-in page.
 */
export async function apiFetch(path, { auth = true, headers = {}, ...init } = {}) {
  const h = new Headers(headers);
  if (auth) {
    const session = getSession();
    if (!session) {
      goToLogin("session.expired");
      throw new ApiError(401, "token_expired", "session expired");
    }
    h.set("Authorization", `Bearer ${session.token}`);
  }
  let response;
  try {
    response = await fetch(path, { ...init, headers: h });
  } catch (err) {
    if (err && err.name === "AbortError") throw err; // cancelled by the page, not a failure
    throw new ApiError(0, "network", String(err));
  }
  if (response.ok) return response;
  const err = await errorFrom(response);
  if (auth && response.status === 401) goToLogin("session.expired");
  throw err;
}

export async function apiJson(path, options = {}) {
  const response = await apiFetch(path, {
    ...options,
    headers: { Accept: "application/json", ...(options.headers || {}) },
  });
  return response.json();
}

/** `deviceToken`: a clinic kiosk's registration, binding the session to that kiosk. */
export async function login(username, password, deviceToken = null) {
  const body = { username, password };
  if (deviceToken) body.device_token = deviceToken;
  const response = await apiFetch("/api/auth/login", {
    auth: false,
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify(body),
  });
  const out = await response.json();
  saveSession({ token: out.token, expires_at: out.expires_at, user: out.user });
  return out;
}

export function logout() {
  const session = getSession();
  if (session) {
    // End the session on the server too: its token stops working at once, not at its expiry.
    // keepalive: the request outlives the navigation to the sign-in page.
    fetch("/api/auth/logout", {
      method: "POST", keepalive: true, headers: { Authorization: `Bearer ${session.token}` },
    }).catch(() => {});
  }
  goToLogin("session.signedOut");
}

/**
 * POST files to /api/uploads with XMLHttpRequest (fetch cannot report upload progress, which
 * matters on slow township links). `onProgress(fraction)` is called while sending.
 */
export function uploadFiles(files, onProgress) {
  const session = getSession();
  if (!session) {
    goToLogin("session.expired");
    return Promise.reject(new ApiError(401, "token_expired", "session expired"));
  }
  const form = new FormData();
  for (const file of files) form.append("files", file, file.name);
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/uploads");
    xhr.setRequestHeader("Authorization", `Bearer ${session.token}`);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.onprogress = (ev) => {
      if (ev.lengthComputable && onProgress) onProgress(ev.loaded / ev.total);
    };
    xhr.upload.onload = () => onProgress && onProgress(1);
    xhr.onerror = () => reject(new ApiError(0, "network", "network error"));
    xhr.onload = () => {
      let body = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        body = null;
      }
      if (xhr.status >= 200 && xhr.status < 300 && body) {
        resolve(body);
        return;
      }
      if (xhr.status === 401) goToLogin("session.expired");
      const err = apiErrorFrom(xhr.status, body, { get: (name) => xhr.getResponseHeader(name) });
      // "none stored" still lists each file's reason
      if (body && (body.failed || body.stored)) err.body = body;
      reject(err);
    };
    xhr.send(form);
  });
}

// ---- DICOM JSON model helpers -------------------------------------------------------------

export const TAG = {
  StudyInstanceUID: "0020000D",
  SeriesInstanceUID: "0020000E",
  SOPInstanceUID: "00080018",
  PatientName: "00100010",
  PatientID: "00100020",
  StudyDate: "00080020",
  StudyTime: "00080030",
  AccessionNumber: "00080050",
  StudyDescription: "00081030",
  ModalitiesInStudy: "00080061",
  Modality: "00080060",
  SeriesDescription: "0008103E",
  SeriesNumber: "00200011",
  InstanceNumber: "00200013",
  ImagePositionPatient: "00200032",
  SliceLocation: "00201041",
  NumberOfFrames: "00280008",
  Rows: "00280010",
  Columns: "00280011",
  PhotometricInterpretation: "00280004",
  WindowCenter: "00281050",
  WindowWidth: "00281051",
  NumberOfStudyRelatedSeries: "00201206",
  NumberOfStudyRelatedInstances: "00201208",
  NumberOfSeriesRelatedInstances: "00201209",
};

/** All values of a tag (always an array). Tag lookup tolerates lower-case hex. */
export function values(obj, tag) {
  if (!obj) return [];
  const el = obj[tag] || obj[tag.toLowerCase()];
  return (el && Array.isArray(el.Value)) ? el.Value : [];
}

export function first(obj, tag, fallback = undefined) {
  const v = values(obj, tag);
  return v.length ? v[0] : fallback;
}

export function num(obj, tag, fallback = undefined) {
  const v = first(obj, tag);
  if (v === undefined || v === null || v === "") return fallback;
  const n = Number(v);
  return Number.isFinite(n) ? n : fallback;
}

/** A PN value as display text: "Doe^John" → "Doe John"; with `lang` zh the ideographic form first. */
export function personName(obj, tag = TAG.PatientName, lang = "en") {
  const v = first(obj, tag);
  if (v === undefined || v === null) return "";
  if (typeof v === "string") return v.split("^").filter(Boolean).join(" ");
  const fmt = (s) => (s ? String(s).split("^").filter(Boolean).join(lang === "zh" && /[^\x00-\x7f]/.test(s) ? "" : " ") : "");
  const alpha = fmt(v.Alphabetic);
  const ideo = fmt(v.Ideographic);
  if (lang === "zh" && ideo) return alpha ? `${ideo} (${alpha})` : ideo;
  return alpha || ideo || fmt(v.Phonetic);
}

/** "20240131" → "2024-01-31". */
export function formatDate(da) {
  if (!da) return "";
  const s = String(da);
  return /^\d{8}$/.test(s) ? `${s.slice(0, 4)}-${s.slice(4, 6)}-${s.slice(6, 8)}` : s;
}
