// The best photos: the featured ones, and the leaderboard per category and period.

import { gql } from "./api.js";
import { $, clearError, h, score, showError, votes } from "./dom.js";

const PHOTO = "id title category thumb: url(variant: THUMBNAIL) rating { score votes } owner { displayName }";
const FEATURED = `query Featured { featuredConnection(first: 12) { nodes { ${PHOTO} } } }`;
const BOARD = `query Board($c: String, $p: LeaderboardPeriod) {
  leaderboard(category: $c, period: $p, first: 20) { edges { node { ${PHOTO} } } } }`;

const byline = (photo) => (photo.owner?.displayName ? `by ${photo.owner.displayName}` : "");

function entry(photo, index) {
  return h("li", { dataset: { photoId: photo.id, category: photo.category || "" } },
    h("div", { class: "entry" },
      h("span", { class: "rank" }, `${index + 1}.`),
      h("img", { src: photo.thumb, alt: photo.title || `A ${photo.category || ""} photo` }),
      h("div", {},
        h("span", { class: "score-big" }, score(photo.rating)), ` · ${votes(photo.rating)}`, h("br"),
        h("span", { class: "hint" }, [photo.title, photo.category, byline(photo)].filter(Boolean).join(" · ")))));
}

async function loadFeatured() {
  const photos = (await gql(FEATURED)).featuredConnection.nodes;
  $("#featured").replaceChildren(...photos.map((photo) => h("li", { dataset: { photoId: photo.id } },
    h("img", { src: photo.thumb, alt: photo.title || "A featured photo", title: `${score(photo.rating)} · ${byline(photo)}` }))));
  if (!photos.length) $("#featured").append(h("li", { class: "empty" }, "Nothing featured yet."));
}

async function loadBoard() {
  const variables = { c: $("#board-category").value || null, p: $("#board-period").value };
  const edges = (await gql(BOARD, variables)).leaderboard.edges;
  $("#board").replaceChildren(...edges.map((edge, index) => entry(edge.node, index)));
  if (!edges.length) $("#board").append(h("li", { class: "empty" }, "No settled photos here yet."));
}

async function refresh(loader) {
  try {
    await loader();
    clearError();
  } catch (error) {
    showError(error);
  }
}

export function setup(categories) {
  $("#board-category").replaceChildren(h("option", { value: "" }, "All categories"),
    ...categories.map((c) => h("option", { value: c }, c)));
  for (const select of [$("#board-category"), $("#board-period")]) {
    select.addEventListener("change", () => refresh(loadBoard));
  }
}

export function show() {
  refresh(loadFeatured);
  refresh(loadBoard);
}
