// Kept so old imports keep working: the module is js/components/call.js.
export * from "./components/call.js";
