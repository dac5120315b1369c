// The sign-in card of every page (study list, kiosk, expert workstation).

import { ApiError, login, takeFlash } from "../lib/api.js";
import { t } from "../lib/i18n.js";
import { formatWait } from "../messages.js";

export function signInMarkup() {
  return `
    <form class="login-card" data-testid="login-form" novalidate>
      <h1 data-i18n="login.heading">Sign in</h1>
      <div class="msg info" data-testid="login-message" role="status" hidden></div>
      <div class="msg error" data-testid="login-error" role="alert" hidden></div>
      <div class="field">
        <label for="login-username" data-i18n="login.username">Username</label>
        <input id="login-username" name="username" type="text" autocomplete="username"
               autocapitalize="off" spellcheck="false" required data-testid="login-username">
      </div>
      <div class="field">
        <label for="login-password" data-i18n="login.password">Password</label>
        <input id="login-password" name="password" type="password" autocomplete="current-password"
               required data-testid="login-password">
      </div>
      <p class="hint" data-testid="login-device" data-i18n="kiosk.signin.device" hidden></p>
      <button type="submit" class="primary" data-testid="login-submit" data-i18n="login.submit">Sign in</button>
    </form>`;
}

/** The sign-in error to show: an i18n key and its params (never the server's English). */
function loginErrorKey(err) {
  if (!(err instanceof ApiError) || err.status === 0) return ["login.unreachable", {}];
  if (err.status === 429) {
    // a lockout after failed sign-ins; the wait comes as Retry-After / details.retry_after_s
    const wait = err.details.retry_after_s;
    return wait === undefined || wait === null
      ? ["login.locked", {}]
      : ["login.lockedFor", { wait: { toString: () => formatWait(wait) } }]; // in the current language
  }
  if (err.status === 400 || err.status === 401) return ["login.failed", {}];
  if (err.status === 403 && err.code === "forbidden") return ["login.otherClinic", {}];
  return ["login.error", { message: err }];
}

/** Wires the card in `root`; `onSignedIn(body)` after a successful POST /api/auth/login. */
export function bindSignIn(root, { deviceToken = null, onSignedIn }) {
  const q = (id) => root.querySelector(`[data-testid="${id}"]`);
  const form = q("login-form");
  const errBox = q("login-error");
  const msgBox = q("login-message");
  q("login-device").hidden = !deviceToken;
  const flash = takeFlash();
  if (flash) {
    msgBox.dataset.i18n = flash;
    msgBox.textContent = t(flash);
  }
  msgBox.hidden = !flash;
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const username = q("login-username").value.trim();
    const password = q("login-password").value;
    errBox.hidden = true;
    if (!username || !password) {
      errBox.dataset.i18n = "login.failed";
      errBox.textContent = t("login.failed");
      errBox.hidden = false;
      return;
    }
    const submit = q("login-submit");
    submit.disabled = true;
    submit.textContent = t("login.busy");
    try {
      const body = await login(username, password, deviceToken);
      q("login-password").value = "";
      msgBox.hidden = true;
      onSignedIn(body);
    } catch (err) {
      const [key, params] = loginErrorKey(err);
      errBox.dataset.i18n = key;
      errBox.i18nParams = params; // a language switch re-renders it whole
      errBox.dataset.code = (err && err.code) || "";
      errBox.textContent = t(key, params);
      errBox.hidden = false;
      q("login-password").select();
    } finally {
      submit.disabled = false;
      submit.textContent = t("login.submit");
    }
  });
}
