// 404.html: the page the server answers for an unknown /ui/ address (status 404).

import { applyI18n, toggleLang } from "./i18n.js";

applyI18n(document);
document.querySelector('[data-testid="not-found-path"]').textContent = window.location.pathname;
document.querySelector('[data-testid="lang-toggle"]').addEventListener("click", toggleLang);
