// The workflow pages' top-bar links (js/components/workflow-nav.js).

import { addMessages } from "../lib/i18n.js";

addMessages({
  en: { "nav.worklist": "Worklist", "nav.register": "Critical values" },
  zh: { "nav.worklist": "阅片工作列表", "nav.register": "危急值登记" },
});
