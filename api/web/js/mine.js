// The player's own photos, newest first, every status: a 1-10 score and the votes it rests on.

import { gql, imageSrc } from "./api.js";
import { $, clearError, h, score, showError, votes } from "./dom.js";

const MINE = `query Mine($after: String) { me { photos(first: 24, after: $after) {
  edges { node { id status title category thumb: url(variant: THUMBNAIL) rating { score votes } failure { reason } } }
  pageInfo { hasNextPage endCursor } } } }`;
const STATUS_WORDS = { PROCESSING: "Processing", READY: "Ready", FAILED: "Failed", HIDDEN: "Held for review" };

let cursor = null;
let blobs = []; // object URLs of private thumbnails, released when the list is redrawn

function card(photo) {
  const image = h("img", { alt: photo.title || "Your photo", loading: "lazy" });
  imageSrc(photo, "THUMBNAIL").then((src) => {
    if (src.startsWith("blob:")) blobs.push(src);
    image.src = src;
  });
  return h("li", { class: "card mine", dataset: { photoId: photo.id, status: photo.status } },
    image,
    h("div", { class: "body" },
      h("span", { class: `status ${photo.status}` }, STATUS_WORDS[photo.status] || photo.status),
      photo.title ? h("b", {}, photo.title) : null,
      photo.category ? h("span", {}, photo.category) : null,
      photo.status === "READY"
        ? h("span", { class: "rating" }, h("span", { class: "score-big" }, score(photo.rating)), " / 10 · ",
          h("span", { class: "votes" }, votes(photo.rating)))
        : null,
      photo.failure ? h("span", { class: "failure" }, photo.failure.reason) : null));
}

async function load(more) {
  try {
    const me = (await gql(MINE, { after: more ? cursor : null })).me;
    const page = me ? me.photos : { edges: [], pageInfo: { hasNextPage: false, endCursor: null } };
    const list = $("#mine");
    if (!more) {
      for (const url of blobs) URL.revokeObjectURL(url);
      blobs = [];
      list.replaceChildren();
    }
    list.append(...page.edges.map((edge) => card(edge.node)));
    if (!list.children.length) list.append(h("li", { class: "empty" }, "No photos yet: upload one."));
    cursor = page.pageInfo.endCursor;
    $("#mine-more").hidden = !page.pageInfo.hasNextPage;
    clearError();
  } catch (error) {
    showError(error);
  }
}

export function setup() {
  $("#mine-more").addEventListener("click", () => load(true));
}

export function show() {
  load(false);
}
