// Every user-visible label of the web client, in English and Chinese.
//
// Markup carries `data-i18n="key"` (text), `data-i18n-placeholder`, `data-i18n-aria-label` and
// `data-i18n-title`; `applyI18n()` fills them. Scripts call `t(key, params)`.

const STORAGE_KEY = "hz.lang";
export const LANGS = ["en", "zh"];

const MESSAGES = {
  en: {
    "app.title": "Huizhen Tele-Imaging",
    "app.subtitle": "County medical community image reading",
    "lang.toggle": "中文",
    "lang.toggle.aria": "Switch language to Chinese",
    "login.heading": "Sign in",
    "login.username": "Username",
    "login.password": "Password",
    "login.submit": "Sign in",
    "login.busy": "Signing in…",
    "login.failed": "Wrong username or password.",
    "login.unreachable": "Cannot reach the server. Check the network and try again.",
    "session.expired": "Your session has expired. Please sign in again.",
    "session.signedOut": "You have signed out.",
    "user.signedInAs": "Signed in as {name}",
    "role.doctor": "Doctor",
    "role.expert": "Expert",
    "role.coordinator": "Coordinator",
    "role.admin": "Administrator",
    "logout": "Sign out",
    "studies.heading": "Studies",
    "studies.search.label": "Search by patient name or ID",
    "studies.search.placeholder": "Patient name or ID",
    "studies.search.submit": "Search",
    "studies.search.clear": "Clear",
    "studies.refresh": "Refresh",
    "studies.col.patient": "Patient",
    "studies.col.patientId": "Patient ID",
    "studies.col.date": "Date",
    "studies.col.modality": "Modality",
    "studies.col.description": "Description",
    "studies.col.series": "Series",
    "studies.col.instances": "Images",
    "studies.col.open": "Open",
    "studies.open": "Open",
    "studies.open.aria": "Open study of {name}",
    "studies.loading": "Loading studies…",
    "studies.empty": "No studies found.",
    "studies.count": "{n} studies",
    "studies.count.one": "1 study",
    "studies.more": "Load more",
    "studies.error": "Could not load the study list: {message}",
    "upload.open": "Upload study",
    "upload.heading": "Upload a study",
    "upload.hint": "Choose DICOM files (.dcm) or one .zip archive. Several files at once are fine.",
    "upload.choose": "Choose files…",
    "upload.close": "Close",
    "upload.sending": "Uploading {n} file(s)… {pct}%",
    "upload.processing": "Storing on the server…",
    "upload.done": "{stored} stored, {failed} failed.",
    "upload.stored": "Stored",
    "upload.failedItem": "Failed",
    "upload.error": "Upload failed: {message}",
    "viewer.back": "Studies",
    "viewer.back.aria": "Back to the study list",
    "viewer.series": "Series",
    "viewer.series.images": "{n} images",
    "viewer.loading": "Loading…",
    "viewer.noStudy": "No study selected.",
    "viewer.noSeries": "This study has no series.",
    "viewer.error": "Error: {message}",
    "viewer.imageError": "Could not load the image: {message}",
    "viewer.slice": "{i} / {n}",
    "viewer.slice.aria": "Slice",
    "viewer.position": "Pos {pos} mm",
    "viewer.wl": "W {w} L {c}",
    "viewer.zoom": "Zoom {pct}%",
    "viewer.viewport.aria": "Image viewport. Mouse wheel or arrow keys: change slice. Drag: window/level.",
    "tool.label": "Tool",
    "tool.scroll": "Scroll",
    "tool.wl": "W/L",
    "tool.pan": "Pan",
    "tool.scroll.aria": "Tool: drag to scroll slices",
    "tool.wl.aria": "Tool: drag to change window width and level",
    "tool.pan.aria": "Tool: drag to move the image",
    "presets.label": "Window presets",
    "zoom.in": "Zoom in",
    "zoom.out": "Zoom out",
    "reset": "Reset",
    "reset.aria": "Reset zoom, pan and window",
    "slice.prev": "Previous slice",
    "slice.next": "Next slice",
    "error.network": "network error",
  },
  zh: {
    "app.title": "汇诊远程影像",
    "app.subtitle": "县域医共体影像诊断",
    "lang.toggle": "English",
    "lang.toggle.aria": "切换为英文界面",
    "login.heading": "登录",
    "login.username": "用户名",
    "login.password": "密码",
    "login.submit": "登录",
    "login.busy": "正在登录…",
    "login.failed": "用户名或密码错误。",
    "login.unreachable": "无法连接服务器，请检查网络后重试。",
    "session.expired": "登录已过期，请重新登录。",
    "session.signedOut": "您已退出登录。",
    "user.signedInAs": "当前用户：{name}",
    "role.doctor": "医生",
    "role.expert": "专家",
    "role.coordinator": "协调员",
    "role.admin": "管理员",
    "logout": "退出登录",
    "studies.heading": "检查列表",
    "studies.search.label": "按患者姓名或编号搜索",
    "studies.search.placeholder": "患者姓名或编号",
    "studies.search.submit": "搜索",
    "studies.search.clear": "清除",
    "studies.refresh": "刷新",
    "studies.col.patient": "患者",
    "studies.col.patientId": "患者编号",
    "studies.col.date": "日期",
    "studies.col.modality": "设备类型",
    "studies.col.description": "检查描述",
    "studies.col.series": "序列",
    "studies.col.instances": "图像",
    "studies.col.open": "打开",
    "studies.open": "打开",
    "studies.open.aria": "打开 {name} 的检查",
    "studies.loading": "正在加载检查…",
    "studies.empty": "没有找到检查。",
    "studies.count": "共 {n} 个检查",
    "studies.count.one": "共 1 个检查",
    "studies.more": "加载更多",
    "studies.error": "无法加载检查列表：{message}",
    "upload.open": "上传检查",
    "upload.heading": "上传检查",
    "upload.hint": "选择 DICOM 文件（.dcm）或一个 .zip 压缩包，可一次选择多个文件。",
    "upload.choose": "选择文件…",
    "upload.close": "关闭",
    "upload.sending": "正在上传 {n} 个文件… {pct}%",
    "upload.processing": "服务器正在保存…",
    "upload.done": "成功 {stored} 个，失败 {failed} 个。",
    "upload.stored": "已保存",
    "upload.failedItem": "失败",
    "upload.error": "上传失败：{message}",
    "viewer.back": "检查列表",
    "viewer.back.aria": "返回检查列表",
    "viewer.series": "序列",
    "viewer.series.images": "{n} 幅图像",
    "viewer.loading": "正在加载…",
    "viewer.noStudy": "未选择检查。",
    "viewer.noSeries": "该检查没有序列。",
    "viewer.error": "错误：{message}",
    "viewer.imageError": "图像加载失败：{message}",
    "viewer.slice": "{i} / {n}",
    "viewer.slice.aria": "层面",
    "viewer.position": "位置 {pos} mm",
    "viewer.wl": "窗宽 {w} 窗位 {c}",
    "viewer.zoom": "缩放 {pct}%",
    "viewer.viewport.aria": "图像视窗。鼠标滚轮或方向键：翻层；拖动：调节窗宽窗位。",
    "tool.label": "工具",
    "tool.scroll": "翻层",
    "tool.wl": "窗宽窗位",
    "tool.pan": "平移",
    "tool.scroll.aria": "工具：拖动翻层",
    "tool.wl.aria": "工具：拖动调节窗宽窗位",
    "tool.pan.aria": "工具：拖动移动图像",
    "presets.label": "窗口预设",
    "zoom.in": "放大",
    "zoom.out": "缩小",
    "reset": "复位",
    "reset.aria": "复位缩放、平移和窗宽窗位",
    "slice.prev": "上一层",
    "slice.next": "下一层",
    "error.network": "网络错误",
  },
};

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

export function t(key, params = {}) {
  const table = MESSAGES[current] || MESSAGES.en;
  let text = table[key] ?? MESSAGES.en[key] ?? key;
  for (const [name, value] of Object.entries(params)) {
    text = text.split(`{${name}}`).join(String(value));
  }
  return text;
}

export function applyI18n(root = document) {
  document.documentElement.lang = current === "zh" ? "zh-CN" : "en";
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
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
