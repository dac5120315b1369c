// The one catalogue of error texts: every error code the server answers, in English and Chinese.
//
// The server's `error.message` is English for logs and API users; the pages never show it. They
// show the text of `error.code` here, with `error.details` filled in (a wait time, a size limit).
// Keys: the server's codes (server/errors.py, its imaging table, literal codes in JSON bodies and
// WebSocket `error` messages, per-file upload codes), `failure.0xNNNN` for PS3.4 Failure Reasons
// of a STOW response, `ws.close.NNNN` for the page WebSocket's close codes, `detail.<name>` for a
// sentence about one detail, and the client's own `network` and `unknown`.
//
// Keep ONE entry per line, `"key": { en: "…", zh: "…" },`: tests/unit/test_error_messages.py
// reads this file and fails when a server code has no text in both languages.

import { getLang } from "./lib/i18n.js";

const ERRORS = {
  // --- request and input
  "bad_request": { en: "The request was not valid.", zh: "请求无效。" },
  "invalid_parameter": { en: "Some of the values sent are not valid.", zh: "部分填写或发送的内容无效。" },
  "invalid_json": { en: "The server could not read what the page sent. Reload the page and try again.", zh: "服务器无法读取页面发送的内容，请刷新页面后重试。" },
  "invalid_message": { en: "The server did not understand what the page sent. Reload the page and try again.", zh: "服务器无法识别页面发送的内容，请刷新页面后重试。" },
  "method_not_allowed": { en: "This action is not available here.", zh: "此处不支持该操作。" },
  "not_acceptable": { en: "The server cannot give this in the format asked for.", zh: "服务器无法以所需格式提供该内容。" },
  "unsupported_media_type": { en: "This kind of file or data is not accepted here.", zh: "此处不接受这种文件或数据。" },
  "payload_too_large": { en: "The upload is too large.", zh: "上传的内容过大。" },
  "http_error": { en: "The server could not handle this request.", zh: "服务器无法处理此请求。" },
  "audit_archive": { en: "The audit archive is missing, does not verify, or the prune is not allowed.", zh: "审计归档缺失、校验未通过，或不允许清理。" },
  // --- signing in and permissions
  "unauthenticated": { en: "Please sign in.", zh: "请先登录。" },
  "invalid_credentials": { en: "Wrong username or password.", zh: "用户名或密码错误。" },
  "token_expired": { en: "Your session has expired. Please sign in again.", zh: "登录已过期，请重新登录。" },
  "session_ended": { en: "Your session was ended (signed out, password changed or account disabled). Please sign in again.", zh: "会话已结束（已退出、密码已更改或账号已停用），请重新登录。" },
  "forbidden": { en: "This account is not allowed to do this.", zh: "当前账号无权执行此操作。" },
  "too_many_requests": { en: "Too many attempts in a short time.", zh: "短时间内尝试次数过多。" },
  "too_many_connections": { en: "This account is open on too many pages or devices. Close one and try again.", zh: "该账号打开的页面或设备过多，请关闭一个后重试。" },
  "too_many_messages": { en: "Too many actions at once. Please slow down a little.", zh: "操作过于频繁，请稍慢一些。" },
  // --- things that are not there, or clash
  "not_found": { en: "Not found, or this account may not see it.", zh: "未找到，或当前账号无权查看。" },
  "no_expert_online": { en: "No expert of this department is online right now. Choose another department, or leave a request.", zh: "该科室目前没有专家在线，请选择其他科室，或留下会诊请求。" },
  "patient_mismatch": { en: "The attached study belongs to another patient than the one named. Check the patient, or confirm that this study is meant.", zh: "附带的检查属于另一位患者，与填写的患者不符。请核对患者，或确认确实要附带该检查。" },
  "conflict": { en: "This clashes with something that already exists.", zh: "与已有的内容冲突。" },
  "draft_stale": { en: "This draft was saved elsewhere meanwhile (another tab or device): reload it.", zh: "此草稿已在别处（另一标签页或设备）保存：请重新加载。" },
  "stale_view": { en: "The shared view moved on meanwhile; showing the newest one.", zh: "共享画面已更新，正在显示最新画面。" },
  // --- reading worklist and critical alerts
  "claim_conflict": { en: "Another expert claimed this request first, or it is no longer waiting.", zh: "其他专家已先认领该阅片请求，或它已不在等待中。" },
  "not_claim_holder": { en: "You no longer hold this request: it was released, lapsed or reassigned.", zh: "您已不再持有该阅片请求：它已被释放、超时退回或改派。" },
  "read_back_mismatch": { en: "The read-back does not repeat the finding. Read the finding again and type it back.", zh: "复读内容与危急值不符，请重新阅读并复述。" },
  "too_many_marks": { en: "This image or study already holds as many annotations or key images as allowed. Remove some first.", zh: "此图像或检查的标注或关键图像已达上限，请先删除一些。" },
  "nothing_to_export": { en: "There is nothing to export yet: add measurements or key images first.", zh: "还没有可导出的内容：请先添加测量或关键图像。" },
  "invalid_transition": { en: "This referral has moved on meanwhile: this step is no longer possible.", zh: "该转诊的状态已变化，此操作已不可用。" },
  "stale_referral": { en: "Someone changed this referral meanwhile. Reload it and try again.", zh: "该转诊刚被他人修改，请刷新后重试。" },
  "referral_route_closed": { en: "No referral agreement is configured between these institutions.", zh: "这两家机构之间尚未配置转诊关系。" },
  // --- images and uploads
  "invalid_dicom": { en: "Not a medical image file (DICOM) that can be read.", zh: "不是可读取的医学影像文件（DICOM）。" },
  "unsupported_transfer_syntax": { en: "The image is compressed in a way the server cannot read.", zh: "图像的压缩格式服务器无法读取。" },
  "image_too_large": { en: "The image is too large for the server to handle.", zh: "图像过大，服务器无法处理。" },
  "frame_not_found": { en: "This image does not exist in the study.", zh: "检查中没有这幅图像。" },
  "invalid_window": { en: "This window width/level is not valid.", zh: "窗宽窗位的值无效。" },
  "invalid_viewport": { en: "The image size asked for is not valid.", zh: "请求的图像尺寸无效。" },
  "imaging_error": { en: "The image could not be read.", zh: "无法读取该图像。" },
  "invalid_archive": { en: "The zip file cannot be opened: it is damaged, incomplete or password-protected.", zh: "无法打开该压缩包：文件损坏、不完整或设有密码。" },
  "unsupported_archive": { en: "The zip file is packed in a way the server cannot open. Zip it again with the usual settings.", zh: "该压缩包的压缩方式服务器无法打开，请用常规设置重新压缩。" },
  "nested_archive": { en: "A zip inside the zip is not opened. Upload the inner zip on its own.", zh: "压缩包内的压缩包不会被打开，请单独上传里面的压缩包。" },
  "wrong_study": { en: "This file belongs to a different study.", zh: "该文件属于另一个检查。" },
  "nothing_stored": { en: "None of the files could be stored.", zh: "所有文件都未能保存。" },
  // --- the server itself
  "internal_error": { en: "Something went wrong on the server. Please try again; if it keeps happening, tell the administrator.", zh: "服务器出错，请重试；如果反复出现，请联系管理员。" },
  "service_unavailable": { en: "The server is busy or part of it is not available. Please try again in a moment.", zh: "服务器繁忙或部分服务暂不可用，请稍后重试。" },
  "configuration_error": { en: "The server is not set up correctly. Please tell the administrator.", zh: "服务器配置有误，请联系管理员。" },
  // --- the client's own
  "network": { en: "Cannot reach the server. Check the network and try again.", zh: "无法连接服务器，请检查网络后重试。" },
  "timeout": { en: "The server did not answer in time. Please try again.", zh: "服务器未及时响应，请重试。" },
  "unknown": { en: "Something went wrong (code {code}).", zh: "出错了（代码 {code}）。" },
  // --- a sentence per detail the server sends
  "detail.retry_after_s": { en: "Try again in {wait}.", zh: "请在{wait}后重试。" },
  "detail.limit_bytes": { en: "The limit is {mb} MB.", zh: "上限为 {mb} MB。" },
  // --- PS3.4 Failure Reasons of a STOW-RS response (server/ingest.py FAILURE_*)
  "failure.0xC000": { en: "The file could not be read as a medical image (DICOM).", zh: "无法将该文件读取为医学影像（DICOM）。" },
  "failure.0xC122": { en: "The image is compressed in a way the server cannot read.", zh: "图像的压缩格式服务器无法读取。" },
  "failure.0xA700": { en: "The image is too large, or the server is out of space.", zh: "图像过大，或服务器存储空间不足。" },
  "failure.0x0110": { en: "The server could not process this file.", zh: "服务器无法处理该文件。" },
  "failure.0xA770": { en: "This image is already stored for another clinic.", zh: "该影像已由其他卫生院保存。" },
  // --- close codes of the page WebSocket (server/realtime/websocket.py, hub.py)
  "ws.close.4401": { en: "Your session has ended. Please sign in again.", zh: "登录已失效，请重新登录。" },
  "ws.close.4408": { en: "The connection was too slow and was closed. Reconnecting…", zh: "连接过慢已被断开，正在重连…" },
  "ws.close.4409": { en: "This account is open on too many pages or devices. Close one and try again.", zh: "该账号打开的页面或设备过多，请关闭一个后重试。" },
  "ws.close.4429": { en: "This page sent too many messages and was disconnected. Reconnecting…", zh: "此页面发送的消息过多，已被断开，正在重连…" },
};

function fill(text, params) {
  let out = text;
  for (const [name, value] of Object.entries(params)) out = out.split(`{${name}}`).join(String(value));
  return out;
}

function lookup(key, lang) {
  const entry = ERRORS[key];
  return entry ? entry[lang] || entry.en : null;
}

/** "40 s" / "15 min" (Chinese "40秒" / "15分钟"): a wait in seconds, rounded up. */
export function formatWait(seconds, lang = getLang()) {
  const s = Math.max(1, Math.ceil(Number(seconds) || 0));
  if (s < 90) return lang === "zh" ? `${s}秒` : `${s} s`;
  const min = Math.ceil(s / 60);
  return lang === "zh" ? `${min}分钟` : `${min} min`;
}

/** Has the catalogue a text for this key (a code, `failure.0x…`, `ws.close.…`)? */
export function hasErrorText(key) {
  return Object.hasOwn(ERRORS, key);
}

/**
 * The text of an error code in the page's language, with its details: `retry_after_s` says how
 * long to wait, `limit_bytes` the size limit. An unknown code says "code x" (never the English
 * server message).
 */
export function errorText(code, details = {}, lang = getLang()) {
  const parts = [lookup(code, lang) ?? fill(lookup("unknown", lang), { code: code || "?" })];
  const d = details || {};
  const number = (v) => v !== null && v !== undefined && v !== "" && Number.isFinite(Number(v));
  if (number(d.retry_after_s)) {
    parts.push(fill(lookup("detail.retry_after_s", lang), { wait: formatWait(d.retry_after_s, lang) }));
  }
  if (number(d.limit_bytes)) {
    parts.push(fill(lookup("detail.limit_bytes", lang), { mb: Math.round(Number(d.limit_bytes) / 2 ** 20) }));
  }
  return parts.join(lang === "zh" ? "" : " "); // Chinese sentences follow each other unspaced
}

/** A PS3.4 Failure Reason (a number) as a plain sentence, or null when it has none here. */
export function failureReasonText(reason, lang = getLang()) {
  const n = Number(reason);
  if (!Number.isInteger(n)) return null;
  return lookup(`failure.0x${n.toString(16).toUpperCase().padStart(4, "0")}`, lang);
}

/** Why the page WebSocket was closed, or null for a close code without a text. */
export function closeText(code, lang = getLang()) {
  return lookup(`ws.close.${code}`, lang);
}

/**
 * What to show for any error: a server error (it has a `code`) by its code, a failed `fetch`
 * (a TypeError) as "cannot reach the server", anything else (a browser error such as a denied
 * camera) by its own message.
 */
export function describeError(err, lang = getLang()) {
  if (!err) return errorText("unknown", {}, lang);
  // a string code: DOMExceptions carry a legacy numeric `code` of their own
  if (typeof err === "object" && typeof err.code === "string" && err.code) {
    return errorText(err.code, err.details, lang);
  }
  if (err instanceof TypeError) return errorText("network", {}, lang);
  return String((err && err.message) || err);
}

export const _errorsForTests = ERRORS;
