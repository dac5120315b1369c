// The page shell every page uses (docs/ui.md "Page shell"): the top bar (brand or a page's own
// lead, the signed-in user, the connection pill, the notification badge slot, the page's own
// buttons, the language switch, sign-out), the sign-in card, the session (expiry, sign-out, the
// sign-in page to return to), the page WebSocket shared by everything on the page, and the
// slots the shell parts (js/components/shell-parts.js: notification badge, alert banner) mount in.
// The top bar stays on one row: its less-used links (TOPBAR_RANKS) go into a "More" menu
// (`topbar-more`, js/components/viewer/toolbar-fit.js) when the screen is too narrow for them; the
// brand, the connection pill, the badges (notifications, MDT meetings with their count), the
// language switch and sign-out always stay on the bar.
//
//   const shell = mountShell({ title: "kiosk.title", net: true, onSession: (session) => … });
//   shell.start();

import { applyI18n, onLangChange, t, toggleLang } from "../lib/i18n.js";
import { getSession, goToLogin, logout, setLoginPage, watchExpiry } from "../lib/api.js";
import { Signal } from "../lib/signal.js";
import { byTestId, show } from "../lib/dom.js";
import { closeText } from "../messages.js";
import { bindSignIn, signInMarkup } from "./signin.js";
import { SHELL_PARTS } from "./shell-parts.js";
import { ToolbarFit } from "./viewer/toolbar-fit.js";

// the top-bar links that may go into the "More" menu, the most used first (the last to go); the
// language switch goes last, and only on the narrowest screens (768 px with an MDT invitation)
const TOPBAR_RANKS = ["lang-toggle", "history-open", "nav-worklist", "reports-open", "referrals-open",
  "nav-register"];

/** The connection pill: "Connected" / "Connecting…" / "Offline — why" (the close code's text). */
export function renderNetStatus(pill, signal) {
  const st = signal ? signal.status : "closed";
  pill.hidden = false;
  pill.dataset.state = st;
  const why = signal && st !== "open" ? closeText(signal.closeCode) : null;
  pill.textContent = why ? `${t(`net.${st}`)} — ${why}` : t(`net.${st}`);
  pill.title = why || "";
}

function topBarMarkup({ title, subtitle, lead, actions }) {
  // With a subtitle the user's name stands on its own; without one it is the brand's second line.
  const brand = lead || `
    <div class="brand">
      <span class="brand-title" data-i18n="${title}"></span>
      ${subtitle ? `<span class="brand-sub" data-i18n="${subtitle}"></span>` : `<span class="brand-sub" data-testid="user-name" hidden></span>`}
    </div>`;
  return `
    <header class="topbar" data-shell="topbar">
      ${brand}
      ${subtitle && !lead ? `<span class="user-box" data-testid="user-name" hidden></span>` : ""}
      <span class="net-pill" data-testid="net-status" data-state="closed" role="status" hidden></span>
      <span class="shell-slot" data-slot="badge"></span>
      <span class="shell-slot" data-slot="actions">${actions || ""}</span>
      <button type="button" data-testid="lang-toggle" data-i18n="lang.toggle"
              data-i18n-aria-label="lang.toggle.aria"></button>
      <button type="button" data-testid="logout" data-i18n="logout" hidden></button>
    </header>`;
}

export class Shell {
  /**
   * Options (all optional):
   * - `title`: i18n key of the brand title (also the tab title unless the page sets one);
   * - `subtitle`: i18n key of the brand's second line (the user's name then stands apart);
   * - `lead`: HTML replacing the brand (the viewer's back button and patient line);
   * - `actions`: HTML of the page's own top-bar buttons (before the language switch);
   * - `container`: where the top bar goes (prepended; default `document.body`);
   * - `signIn`: false = this page has no sign-in card: without a session it goes to `loginPage`;
   * - `anonymous`: a page for anyone (404): no session, no sign-in, no sign-out;
   * - `loginPage`: where a session that ends sends the user (default index.html);
   * - `deviceToken`: the kiosk's device token for the sign-in;
   * - `net`: show the connection pill (for the page WebSocket, `connect()`);
   * - `userDetail(user)`: text after "Signed in as …" (role, department);
   * - `onSession(session, {fromSignIn})`: the page starts (the shell shows the user and sign-out);
   * - `onSignInShown()`: the sign-in card is shown (hide the page's views);
   * - `beforeSignOut()`: async, false keeps the user signed in (a call asks first);
   * - `onSignOut()`: release what the page holds (camera, calls) just before leaving;
   * - `onLangChange(lang)`: re-render the page's dynamic text.
   */
  constructor(options = {}) {
    this.options = { signIn: true, net: false, container: document.body, ...options };
    this.session = null;
    this.signal = null;
    this.partsMounted = false;
    const o = this.options;
    if (o.loginPage) setLoginPage(o.loginPage);
    o.container.insertAdjacentHTML("afterbegin", topBarMarkup(o));
    this.topbar = o.container.querySelector(":scope > [data-shell=topbar]");
    this.topbar.insertAdjacentHTML("afterend", `<div class="shell-alerts" data-slot="alerts"></div>`);
    this.loginView = document.getElementById("login-view");
    if (o.anonymous) o.signIn = false;
    if (o.signIn && !this.loginView) {
      this.loginView = document.createElement("main");
      this.loginView.id = "login-view";
      this.loginView.className = "login-wrap";
      this.loginView.hidden = true;
      this.topbar.nextElementSibling.after(this.loginView);
    }
    if (o.signIn) this.loginView.innerHTML = signInMarkup();
    // a link with a count on it ("Reports (2)": opinions to write) is a badge: it stays
    this.fit = new ToolbarFit(this.topbar, TOPBAR_RANKS, {
      onlyNamed: true, keep: (link) => Number(link.dataset.pending || 0) > 0,
      testid: "topbar-more", label: "shell.more",
    });
    this.$("lang-toggle").addEventListener("click", toggleLang);
    this.$("logout").addEventListener("click", () => this.signOut());
    onLangChange((lang) => {
      if (this.session) this.renderUser();
      if (this.signal && o.net) this.renderNet();
      if (o.onLangChange) o.onLangChange(lang);
    });
    applyI18n(document);
  }

  $(testid) {
    return byTestId(testid, this.topbar);
  }

  /** A slot the shell parts and pages fill: "badge", "actions" (top bar) or "alerts" (below). */
  slot(name) {
    return document.querySelector(`[data-slot="${name}"]`);
  }

  /** Signed in: the page starts; not: the sign-in card (or, without one, the sign-in page). */
  start() {
    if (this.options.anonymous) return;
    const session = getSession();
    if (session) {
      this.enter(session, false);
      return;
    }
    if (!this.options.signIn) {
      goToLogin(null); // getSession() already left a message if the token had expired
      return;
    }
    this.showSignIn();
  }

  showSignIn() {
    show(this.loginView, true);
    show(this.$("logout"), false);
    show(byTestId("user-name"), false);
    if (this.options.onSignInShown) this.options.onSignInShown();
    if (!this.signInBound) {
      this.signInBound = true;
      bindSignIn(this.loginView, {
        deviceToken: this.options.deviceToken || null,
        onSignedIn: () => this.enter(getSession(), true),
      });
    }
    byTestId("login-username", this.loginView).focus();
  }

  enter(session, fromSignIn) {
    if (!session) {
      this.showSignIn();
      return;
    }
    this.session = session;
    watchExpiry(session);
    show(this.loginView, false);
    show(this.$("logout"), true);
    this.renderUser();
    if (this.options.onSession) this.options.onSession(session, { fromSignIn });
    if (!this.partsMounted) {
      this.partsMounted = true;
      for (const part of SHELL_PARTS) {
        try {
          part(this);
        } catch (err) {
          console.error("shell part failed", err);
        }
      }
    }
  }

  renderUser() {
    const u = (this.session && this.session.user) || {};
    const box = byTestId("user-name");
    if (!box) return;
    const detail = this.options.userDetail ? this.options.userDetail(u) : "";
    box.textContent = t("user.signedInAs", { name: u.display_name || u.username || "" }) + (detail || "");
    box.hidden = false;
  }

  /** The page WebSocket (one per page, started on first use; the pill follows it when `net`). */
  connect() {
    if (this.signal) return this.signal;
    const session = this.session || getSession();
    this.signal = new Signal(session ? session.token : "");
    if (this.options.net) {
      this.signal.addEventListener("status", () => this.renderNet());
      this.renderNet();
    }
    this.signal.start();
    return this.signal;
  }

  renderNet() {
    renderNetStatus(this.$("net-status"), this.signal);
  }

  /** Sign-out (the top bar's button): asks the page first, releases, ends the session. */
  async signOut() {
    if (this.options.beforeSignOut && !(await this.options.beforeSignOut())) return;
    if (this.options.onSignOut) await this.options.onSignOut();
    if (this.signal) this.signal.stop();
    logout();
  }
}

export function mountShell(options) {
  return new Shell(options);
}
