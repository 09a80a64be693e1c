// Who is playing. In dev the service honours the Firebase Auth emulator convention: unsigned ID tokens
// with the real claim layout (what the emulator itself issues). The page makes one for the name the
// player picks: the same name is the same uid, so a reload or a second device is the same player.
// Elsewhere a real Firebase ID token is pasted in (a production client signs in with the Firebase SDK).

const STORE_KEY = "photoduel.session";
const TOKEN_LIFETIME = 3600; // seconds, as Firebase's own ID tokens
const REFRESH_MARGIN = 300; // re-made this long before it expires

let config = { authEmulator: false, projectId: "demo-photoduel" };
let session = null; // {name, uid} (emulator) or {token} (pasted)
let cached = null; // {token, exp}

export async function loadConfig() {
  const response = await fetch("config.json", { cache: "no-cache" });
  if (response.ok) config = await response.json();
  try {
    session = JSON.parse(localStorage.getItem(STORE_KEY) || "null");
  } catch {
    session = null;
  }
  if (session && Boolean(session.uid) !== Boolean(config.authEmulator)) session = null; // made for another sign-in mode
  return config;
}

export const usesEmulator = () => config.authEmulator;
export const signedIn = () => session !== null;
export const playerName = () => session?.name || session?.uid || "signed in";

/** A stable uid for a name: what the emulator's sign-in by name gives back. */
export function uidFor(name) {
  const slug = name.trim().toLowerCase().normalize("NFKD").replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "");
  return `dev-${slug || "player"}`;
}

function b64url(object) {
  const bytes = new TextEncoder().encode(JSON.stringify(object));
  let text = "";
  for (const byte of bytes) text += String.fromCharCode(byte);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function emulatorToken(uid, name) {
  const now = Math.floor(Date.now() / 1000);
  const claims = {
    iss: `https://securetoken.google.com/${config.projectId}`, aud: config.projectId, auth_time: now,
    user_id: uid, sub: uid, iat: now, exp: now + TOKEN_LIFETIME, name,
    firebase: { identities: {}, sign_in_provider: "custom" },
  };
  return { token: `${b64url({ alg: "none", typ: "JWT" })}.${b64url(claims)}.`, exp: claims.exp };
}

function save(value) {
  session = value;
  cached = null;
  if (value) localStorage.setItem(STORE_KEY, JSON.stringify(value));
  else localStorage.removeItem(STORE_KEY);
}

export function signInWithName(name) {
  save({ name: name.trim(), uid: uidFor(name) });
}

export function signInWithToken(token) {
  save({ token: token.trim() });
}

export function signOut() {
  save(null);
}

/** The bearer token to send now, or null when signed out. */
export function idToken() {
  if (!session) return null;
  if (!session.uid) return session.token;
  const now = Date.now() / 1000;
  if (!cached || cached.exp - now < REFRESH_MARGIN) cached = emulatorToken(session.uid, session.name);
  return cached.token;
}

/** After the service refused the token: an emulator token is made again; a pasted one is dropped. */
export function tokenRefused() {
  cached = null;
  if (session && !session.uid) {
    save(null);
    window.dispatchEvent(new Event("photoduel:signed-out"));
  }
}
