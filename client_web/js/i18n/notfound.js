// The 404 page.

import { addMessages } from "../lib/i18n.js";

addMessages({
  en: {
    "notfound.title": "Page not found — Huizhen",
    "notfound.heading": "Page not found",
    "notfound.body": "There is no page at this address. It may have been mistyped, or the link is out of date.",
    "notfound.home": "Go to the start page",
  },
  zh: {
    "notfound.title": "页面不存在 — 会诊",
    "notfound.heading": "页面不存在",
    "notfound.body": "此地址没有对应的页面，可能是地址输入有误，或链接已过期。",
    "notfound.home": "返回首页",
  },
});
