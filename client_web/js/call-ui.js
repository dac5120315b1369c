// Kept so old imports keep working: the module is js/components/call-ui.js.
export * from "./components/call-ui.js";
