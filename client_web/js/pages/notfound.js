// 404.html: the page the server answers for an unknown /ui/ address (status 404).

import { byTestId } from "../lib/dom.js";
import { mountShell } from "../components/shell.js";
import "../i18n/notfound.js";

mountShell({ title: "app.title", anonymous: true }).start();
byTestId("not-found-path").textContent = window.location.pathname;
