// The few DOM helpers the views share. Text always goes in as text (never HTML): titles and tags are
// the players' own words.

import { inWords } from "./errors.js";

export const $ = (selector, root = document) => root.querySelector(selector);

/** An element: h("li", {class: "card", onclick: fn}, child, "text", ...). */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(element.dataset, value);
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

let errorTimer = null;

/** Say what went wrong, in words, until the next success or for a while. */
export function showError(error) {
  const box = $("#error");
  box.textContent = inWords(error);
  box.dataset.code = error?.code || error?.extensions?.code || "";
  box.hidden = false;
  clearTimeout(errorTimer);
  errorTimer = setTimeout(clearError, 8000);
}

export function clearError() {
  $("#error").hidden = true;
}

export const score = (rating) => (rating ? rating.score.toFixed(1) : "–");
export const votes = (rating) => {
  const n = rating ? rating.votes : 0;
  return `${n} vote${n === 1 ? "" : "s"}`;
};
export const percent = (x) => `${Math.round(x * 100)}%`;
