// The reference web client: sign in, then four views behind tabs (hash routes): play, upload, my
// photos, top. Plain ES modules served by the service itself, no build step.

import { gql } from "./api.js";
import * as auth from "./auth.js";
import { $, clearError, showError } from "./dom.js";
import * as duel from "./duel.js";
import * as mine from "./mine.js";
import * as top from "./top.js";
import * as upload from "./upload.js";
import { resetConnection } from "./ws.js";

const VIEWS = ["play", "upload", "mine", "top"];
const ME = "query Me { me { id displayName } }";
const SET_NAME = "mutation Name($name: String!) { setDisplayName(name: $name) { displayName } }";
const CATEGORIES = "query Categories { categories }";

let keys = null;

function activeView() {
  const wanted = location.hash.replace(/^#/, "");
  return VIEWS.includes(wanted) ? wanted : "play";
}

function route() {
  const signedIn = auth.signedIn();
  $("#view-signin").hidden = signedIn;
  $("#tabs").hidden = !signedIn;
  $("#sign-out").hidden = !signedIn;
  $("#who").textContent = signedIn ? auth.playerName() : "";
  const view = signedIn ? activeView() : null;
  for (const name of VIEWS) $(`#view-${name}`).hidden = name !== view;
  for (const tab of document.querySelectorAll("#tabs a")) tab.classList.toggle("active", tab.dataset.view === view);
  document.body.dataset.view = view || "signin";
  clearError(); // an error belongs to the view it happened in
  if (view === "play") duel.show();
  if (view === "mine") mine.show();
  if (view === "top") top.show();
}

/** The public name follows the name picked at sign-in (the service keeps names unique). */
async function claimName(name) {
  const me = (await gql(ME)).me;
  if (me && me.displayName !== name) await gql(SET_NAME, { name });
}

function setUpSignIn() {
  $("#signin-emulator").hidden = !auth.usesEmulator();
  $("#signin-token").hidden = auth.usesEmulator();
  $("#signin-emulator").addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = $("#signin-name").value.trim();
    auth.signInWithName(name);
    route();
    try {
      await claimName(name);
      clearError();
    } catch (error) {
      showError(error);
    }
  });
  $("#signin-token").addEventListener("submit", (event) => {
    event.preventDefault();
    auth.signInWithToken($("#signin-id-token").value);
    route();
  });
  $("#sign-out").addEventListener("click", () => {
    auth.signOut();
    resetConnection();
    duel.reset();
    upload.reset();
    location.hash = "";
    route();
  });
}

async function categories() {
  try {
    return (await gql(CATEGORIES)).categories;
  } catch (error) {
    showError(error);
    return [];
  }
}

async function start() {
  await auth.loadConfig();
  setUpSignIn();
  const known = await categories();
  keys = duel.setup(known);
  upload.setup();
  mine.setup();
  top.setup(known);
  document.addEventListener("keydown", (event) => {
    if (activeView() === "play" && auth.signedIn()) keys.onKey(event);
  });
  window.addEventListener("hashchange", route);
  window.addEventListener("photoduel:signed-out", route);
  route();
  document.body.dataset.ready = "true";
}

start().catch(showError);
