// The i18n core of every page: the current language, `t(key, params)`, `applyI18n(root)` and
// `addMessages()`. The labels themselves live in js/i18n/: `common.js` (the shell's, loaded here)
// and one table per page or component, which registers itself with addMessages() when imported.
//
// Markup carries `data-i18n="key"` (text), `data-i18n-placeholder`, `data-i18n-aria-label` and
// `data-i18n-title`; `applyI18n()` fills them. Scripts call `t(key, params)`.

import { COMMON_MESSAGES } from "../i18n/common.js";

const STORAGE_KEY = "hz.lang";
export const LANGS = ["en", "zh"];

const MESSAGES = { en: { ...COMMON_MESSAGES.en }, zh: { ...COMMON_MESSAGES.zh } };

function detectLang() {
  try {
    const saved = localStorage.getItem(STORAGE_KEY);
    if (LANGS.includes(saved)) return saved;
  } catch {
    // storage unavailable (private mode): fall back to the browser language
  }
  const nav = (navigator.languages && navigator.languages[0]) || navigator.language || "en";
  return nav.toLowerCase().startsWith("zh") ? "zh" : "en";
}

let current = detectLang();
const listeners = new Set();

export function getLang() {
  return current;
}

export function setLang(lang) {
  if (!LANGS.includes(lang)) return;
  current = lang;
  try {
    localStorage.setItem(STORAGE_KEY, lang);
  } catch {
    // not persisted; the choice still applies to this page
  }
  applyI18n(document);
  for (const fn of listeners) fn(lang);
}

export function toggleLang() {
  setLang(current === "en" ? "zh" : "en");
}

/** Call `fn(lang)` after every language change (to re-render dynamic text). */
export function onLangChange(fn) {
  listeners.add(fn);
}

export function offLangChange(fn) {
  listeners.delete(fn);
}

export function t(key, params = {}) {
  const table = MESSAGES[current] || MESSAGES.en;
  let text = table[key] ?? MESSAGES.en[key] ?? key;
  for (const [name, value] of Object.entries(params)) {
    // String(): an ApiError param gives its text in the current language (js/messages.js)
    text = text.split(`{${name}}`).join(String(value));
  }
  return text;
}

export function applyI18n(root = document) {
  document.documentElement.lang = current === "zh" ? "zh-CN" : "en";
  // `el.i18nParams` (set by the script that filled it) keeps {placeholders} across a switch
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n, el.i18nParams);
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) {
    el.placeholder = t(el.dataset.i18nPlaceholder);
  }
  for (const el of root.querySelectorAll("[data-i18n-aria-label]")) {
    el.setAttribute("aria-label", t(el.dataset.i18nAriaLabel));
  }
  for (const el of root.querySelectorAll("[data-i18n-title]")) el.title = t(el.dataset.i18nTitle);
  const title = document.querySelector("title[data-i18n-doc]");
  if (title) document.title = t(title.dataset.i18nDoc);
}

export const _messagesForTests = MESSAGES;

/** A page's own labels, both languages, merged in: `addMessages({ en: {…}, zh: {…} })`. */
export function addMessages(tables) {
  for (const lang of LANGS) Object.assign(MESSAGES[lang], tables[lang] || {});
}
