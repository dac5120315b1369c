// Small DOM helpers every page and component uses.

/** The element with `data-testid="id"` inside `root` (default: the document), or null. */
export function byTestId(id, root = document) {
  return root.querySelector(`[data-testid="${id}"]`);
}

/** `byTestId` bound to `root`: `const $ = testIds(root); $("logout")`. */
export function testIds(root = document) {
  return (id) => byTestId(id, root);
}

/** Shows or hides `el` (the `hidden` attribute; CSS keeps `[hidden]` hidden). */
export function show(el, visible) {
  if (el) el.hidden = !visible;
}

/**
 * A new element: `el("button", {type: "button", className: "primary", testid: "go",
 * onclick: fn}, "Go")`; `dataset` is merged, other keys are properties.
 */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "testid") node.dataset.testid = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k === "onclick") node.addEventListener("click", v);
    else node[k] = v;
  }
  for (const c of children) node.append(c);
  return node;
}
