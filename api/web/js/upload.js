// Upload by drag and drop, the camera or a file picker. The photo shows at once (the local file), then
// its tag suggestions and category arrive live over `tagSuggestionsReady`; the owner accepts or rejects
// each suggestion.

import { gql, gqlUpload } from "./api.js";
import { $, clearError, h, percent, showError } from "./dom.js";
import { subscribe } from "./ws.js";

const FIELDS = `id status title category categoryConfidence modelCategory tags
  suggestions { tag score source } quality { score } failure { reason } url(variant: DISPLAY)`;
const UPLOAD = `mutation Upload($file: Upload!, $title: String) { uploadPhoto(file: $file, title: $title) { ${FIELDS} } }`;
const READY = `subscription Ready($id: ID!) { tagSuggestionsReady(photoId: $id) { ${FIELDS} } }`;
const ACCEPT = `mutation Accept($id: ID!, $tags: [String!]!) { acceptTags(photoId: $id, tags: $tags) { ${FIELDS} } }`;
const REJECT = `mutation Reject($id: ID!, $tags: [String!]!) { rejectTags(photoId: $id, tags: $tags) { ${FIELDS} } }`;
const STATUS_WORDS = {
  UPLOADING: "Uploading…", PROCESSING: "Finding tags…", READY: "Ready", FAILED: "Failed",
  HIDDEN: "Held for review",
};

const entries = []; // {key, preview, photo, element}, newest first
let keys = 0;

function categoryLine(photo) {
  if (!photo.category) return null;
  const confidence = photo.categoryConfidence == null ? "" : ` · ${percent(photo.categoryConfidence)} sure`;
  if (photo.modelCategory && photo.modelCategory !== photo.category) {
    return h("p", { class: "category" }, `Category: ${photo.category} (you chose it; the model said `,
      `${photo.modelCategory}${confidence})`);
  }
  return h("p", { class: "category" }, "Category: ", h("b", {}, photo.category), confidence);
}

function suggestionChip(entry, suggestion) {
  return h("li", { class: "chip suggestion", dataset: { tag: suggestion.tag } },
    suggestion.tag, h("span", { class: "score" }, percent(suggestion.score)),
    h("button", { class: "accept", "aria-label": `Accept ${suggestion.tag}`, onclick: () => review(entry, ACCEPT, suggestion.tag) }, "✓"),
    h("button", { class: "reject", "aria-label": `Reject ${suggestion.tag}`, onclick: () => review(entry, REJECT, suggestion.tag) }, "✕"));
}

function render(entry) {
  const photo = entry.photo || { status: "UPLOADING", tags: [], suggestions: [] };
  // The file itself while it is on this page: the same pixels, and no reload each time the card changes.
  const src = entry.preview || photo.url;
  const body = h("div", { class: "body" },
    h("span", { class: `status ${photo.status}` }, STATUS_WORDS[photo.status] || photo.status),
    photo.title ? h("b", {}, photo.title) : null,
    categoryLine(photo),
    photo.failure ? h("p", { class: "failure" }, `Processing failed: ${photo.failure.reason}`) : null,
    photo.suggestions.length ? h("p", { class: "hint" }, "Suggested tags: accept the ones that fit") : null,
    h("ul", { class: "chips suggestions" }, photo.suggestions.map((s) => suggestionChip(entry, s))),
    photo.tags.length ? h("ul", { class: "chips tags" }, photo.tags.map((t) => h("li", { class: "chip tag" }, t))) : null,
    photo.quality ? h("p", { class: "hint" }, `Model quality ${percent(photo.quality.score)}`) : null);
  const element = h("li", { class: "card upload", dataset: { photoId: photo.id || "", status: photo.status } },
    h("img", { src, alt: photo.title || "Your photo" }), body);
  if (entry.element) entry.element.replaceWith(element);
  entry.element = element;
  return element;
}

async function review(entry, mutation, tag) {
  try {
    const data = await gql(mutation, { id: entry.photo.id, tags: [tag] });
    entry.photo = data.acceptTags || data.rejectTags;
    clearError();
    render(entry);
  } catch (error) {
    showError(error);
  }
}

function follow(entry) {
  const stop = subscribe(READY, { id: entry.photo.id }, {
    next: (data) => {
      entry.photo = data.tagSuggestionsReady;
      render(entry);
    },
    error: (error) => showError(error),
    complete: () => undefined,
  });
  entry.stop = stop;
}

async function uploadOne(file) {
  const entry = { key: ++keys, preview: URL.createObjectURL(file), photo: null, element: null };
  entries.unshift(entry);
  $("#uploads").prepend(render(entry));
  try {
    const title = $("#upload-title").value.trim() || null;
    entry.photo = (await gqlUpload(UPLOAD, { title }, file)).uploadPhoto;
    clearError();
    render(entry);
    if (entry.photo.status === "PROCESSING") follow(entry);
  } catch (error) {
    entry.element.remove();
    entries.splice(entries.indexOf(entry), 1);
    showError(error);
  }
}

function uploadFiles(files) {
  for (const file of files) uploadOne(file);
}

export function setup() {
  const zone = $("#drop");
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    uploadFiles(event.dataTransfer?.files || []);
  });
  // A photo dropped beside the zone must not make the browser leave the app to open it.
  window.addEventListener("dragover", (event) => event.preventDefault());
  window.addEventListener("drop", (event) => event.preventDefault());
  for (const input of [$("#pick-camera"), $("#pick-file")]) {
    input.addEventListener("change", () => {
      uploadFiles([...input.files]);
      input.value = "";
    });
  }
}

/** Signed out: the last player's uploads leave the screen. */
export function reset() {
  for (const entry of entries) entry.stop?.();
  entries.length = 0;
  $("#uploads").replaceChildren();
}
