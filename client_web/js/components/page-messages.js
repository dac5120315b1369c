// A page's two message boxes: a notice (what just happened, an i18n key) and an error (the
// error code's text in the page's language, `data-code` for tests), one shown at a time, and
// `act()` to run a page action that shows its error there. Used by the admin and coordinator
// pages; `render()` again after a language switch.

import { t } from "../lib/i18n.js";
import { describeError } from "../messages.js";

export class PageMessages {
  /** `failedKey`: the i18n key around the error's text ("… failed: {message}"). */
  constructor(noticeBox, errorBox, failedKey) {
    this.noticeBox = noticeBox;
    this.errorBox = errorBox;
    this.failedKey = failedKey;
    this.notice = null; // {key, params}
    this.error = null;
  }

  showNotice(key, params = {}) {
    this.notice = { key, params };
    this.error = null;
    this.render();
  }

  showError(err) {
    this.error = err;
    this.notice = null;
    this.render();
  }

  render() {
    this.noticeBox.hidden = !this.notice;
    if (this.notice) this.noticeBox.textContent = t(this.notice.key, this.notice.params);
    this.errorBox.hidden = !this.error;
    if (this.error) {
      this.errorBox.textContent = t(this.failedKey, { message: describeError(this.error) });
      this.errorBox.dataset.code = this.error.code || "";
    }
  }

  /** Runs one page action (`button` disabled meanwhile); a failure shows its error text. */
  async act(fn, button) {
    if (button) button.disabled = true;
    try {
      await fn();
    } catch (err) {
      this.showError(err);
    } finally {
      if (button) button.disabled = false;
    }
  }
}
