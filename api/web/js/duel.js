// The duel game: two photos, pick the better one (click, or the arrow keys; down or D for a draw, S to
// skip). The next duel is fetched and its images decoded while the player looks at this one, so it
// appears the moment they answer; the answer's effect (the two photos' scores after the vote) is shown
// briefly underneath.
//
// The next duel is asked for only once the previous answer is recorded: the service never offers a pair
// the player already judged, but it may offer the pair still on screen, and such a ticket is dropped.

import { gql } from "./api.js";
import { $, h, score, showError, votes } from "./dom.js";

const NEXT = `query NextDuel($c: String) { nextDuel(category: $c) {
  id expiresAt left { id url(variant: DISPLAY) } right { id url(variant: DISPLAY) } } }`;
const RESULT = "id thumb: url(variant: THUMBNAIL) rating { score votes }";
const VOTE = `mutation Vote($id: ID!, $c: DuelChoice!) { voteDuel(duelId: $id, choice: $c) {
  accepted applied left { ${RESULT} } right { ${RESULT} } } }`;
const SKIP = "mutation Skip($id: ID!) { skipDuel(duelId: $id) }";
const KEYS = { ArrowLeft: "LEFT", ArrowRight: "RIGHT", ArrowDown: "DRAW", d: "DRAW", D: "DRAW", s: "SKIP", S: "SKIP" };
const EFFECT_MS = 2500;
const EXPIRY_MARGIN_MS = 5000;

let category = "";
let current = null; // the duel on screen
let upcoming = null; // a promise of the next duel (or null)
let counted = 0;
let effectTimer = null;
let loading = null;
let recorded = Promise.resolve(); // the answers sent so far, in order
let generation = 0; // a new category or player: what was on its way for the old one is dropped

function preload(url) {
  const image = new Image();
  image.src = url;
  return image.decode().catch(() => undefined);
}

async function fetchDuel() {
  const duel = (await gql(NEXT, { c: category || null })).nextDuel;
  if (duel) await Promise.all([preload(duel.left.url), preload(duel.right.url)]);
  return duel;
}

const pairOf = (duel) => [duel.left.id, duel.right.id].sort().join(":");
const fresh = (duel) => duel && Date.parse(duel.expiresAt) - Date.now() > EXPIRY_MARGIN_MS;

function render() {
  const board = $("#duel");
  const empty = $("#duel-empty");
  board.dataset.duel = current ? current.id : "";
  board.hidden = !current;
  empty.hidden = Boolean(current);
  if (!current) {
    empty.textContent = loading ? "Finding a duel…" : "No duel right now: upload photos, or try another category.";
    return;
  }
  $("#duel-left img").src = current.left.url;
  $("#duel-right img").src = current.right.url;
}

/** The next duel, asked for once every answer so far is recorded; null if it is the pair on screen. */
function prefetch() {
  const shown = current;
  upcoming = recorded.then(fetchDuel).then((duel) => (duel && pairOf(duel) === pairOf(shown) ? null : duel))
    .catch(() => null);
}

async function load() {
  const mine = generation;
  loading = recorded.then(fetchDuel);
  render();
  let duel = null;
  try {
    duel = await loading;
  } catch (error) {
    if (mine === generation) showError(error);
  }
  if (mine !== generation) return;
  current = duel;
  loading = null;
  render();
  if (current) prefetch();
}

function showEffect(choice, result) {
  const box = $("#vote-effect");
  const label = { LEFT: "You picked the left photo", RIGHT: "You picked the right photo", DRAW: "A draw" }[choice];
  const side = (name, photo, won) => h("figure", { class: won ? "won" : "" },
    h("img", { src: photo.thumb, alt: `${name} photo` }),
    h("figcaption", {}, `${name}: `, h("span", { class: "score-big" }, score(photo.rating)),
      ` · ${votes(photo.rating)}`));
  box.replaceChildren(
    h("div", { class: "label" }, result.accepted ? label : `${label} (already counted)`),
    side("Left", result.left, choice === "LEFT"), side("Right", result.right, choice === "RIGHT"));
  box.hidden = false;
  box.classList.remove("fading");
  clearTimeout(effectTimer);
  effectTimer = setTimeout(() => box.classList.add("fading"), EFFECT_MS);
}

async function send(duel, choice) {
  if (choice === "SKIP") {
    await gql(SKIP, { id: duel.id });
    return;
  }
  const result = (await gql(VOTE, { id: duel.id, c: choice })).voteDuel;
  if (result.accepted) counted += 1;
  $("#vote-count").textContent = String(counted);
  showEffect(choice, result);
}

/** Answer the duel on screen. The next one is shown at once; the answers are sent one after another. */
export async function answer(choice) {
  if (!current) return; // none on screen yet: nothing to answer
  const shown = current;
  current = null; // one answer per duel, however fast the keys come
  recorded = recorded.then(() => send(shown, choice)).catch(showError);
  const mine = generation;
  const next = upcoming ? await upcoming : null;
  if (mine !== generation) return;
  upcoming = null;
  if (fresh(next) && pairOf(next) !== pairOf(shown)) {
    current = next;
    render();
    prefetch();
  } else {
    await load();
  }
}

function onKey(event) {
  const target = event.target;
  if (event.repeat || event.altKey || event.ctrlKey || event.metaKey) return;
  if (target instanceof HTMLInputElement || target instanceof HTMLSelectElement || target instanceof HTMLTextAreaElement) return;
  const choice = KEYS[event.key];
  if (!choice) return;
  event.preventDefault();
  answer(choice);
}

export function setup(categories) {
  const select = $("#duel-category");
  select.replaceChildren(h("option", { value: "" }, "All categories"),
    ...categories.map((c) => h("option", { value: c }, c)));
  select.addEventListener("change", () => {
    category = select.value;
    select.blur(); // the arrow keys play again
    restart();
    load();
  });
  for (const button of document.querySelectorAll("#view-play [data-choice]")) {
    button.addEventListener("click", () => answer(button.dataset.choice));
  }
  return { onKey };
}

/** The view is shown: a duel if there is none on screen. */
export function show() {
  if (!current && !loading) load();
}

function restart() {
  generation += 1;
  current = null;
  upcoming = null;
  loading = null;
}

/** Signed out or in as someone else: nothing of the last player's game stays. */
export function reset() {
  restart();
  counted = 0;
  $("#vote-count").textContent = "0";
  $("#vote-effect").hidden = true;
}
