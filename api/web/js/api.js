// GraphQL over HTTP against this origin's /graphql. Every failure becomes a ServiceError carrying the
// service's `extensions` (its code above all), whatever the HTTP status: a 401, 413 or 429 answers
// with the same error shape as a field error.

import { idToken, tokenRefused } from "./auth.js";
import { ServiceError } from "./errors.js";

const ENDPOINT = "/graphql";

function headers(extra = {}) {
  const token = idToken();
  return { ...(token ? { Authorization: `Bearer ${token}` } : {}), ...extra };
}

async function send(init) {
  let response;
  try {
    response = await fetch(ENDPOINT, init);
  } catch {
    throw new ServiceError("network error", { code: "NETWORK" });
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  const first = body?.errors?.[0];
  if (first) {
    const extensions = { ...(first.extensions || {}) };
    if (!extensions.code && response.status === 413) extensions.code = "PAYLOAD_TOO_LARGE";
    if (!extensions.code && response.status === 429) {
      extensions.code = "RATE_LIMITED";
      extensions.retryAfter = response.headers.get("Retry-After");
    }
    if (extensions.code === "UNAUTHENTICATED") tokenRefused();
    throw new ServiceError(first.message, extensions, response.ok ? null : response.status);
  }
  if (!response.ok || !body) {
    const code = response.status === 429 ? "RATE_LIMITED" : response.status === 413 ? "PAYLOAD_TOO_LARGE"
      : response.status >= 500 ? "UNAVAILABLE" : "INTERNAL_SERVER_ERROR";
    throw new ServiceError(`HTTP ${response.status}`, { code, retryAfter: response.headers.get("Retry-After") },
      response.status);
  }
  return body.data;
}

/** Run a query or mutation; resolves to `data`, rejects with a ServiceError. */
export function gql(query, variables = {}) {
  return send({
    method: "POST",
    headers: headers({ "Content-Type": "application/json", Accept: "application/json" }),
    body: JSON.stringify({ query, variables }),
  });
}

/** A file upload by the GraphQL multipart request spec: the file is variable `$file`. */
export function gqlUpload(query, variables, file) {
  const form = new FormData();
  form.append("operations", JSON.stringify({ query, variables: { ...variables, file: null } }));
  form.append("map", JSON.stringify({ 0: ["variables.file"] }));
  form.append("0", file, file.name || "photo.jpg");
  // The header a plain HTML form cannot send: the service's guard against cross-site uploads.
  return send({ method: "POST", headers: headers({ "Apollo-Require-Preflight": "true" }), body: form });
}

/** An image URL the page can show: public renditions as they are, the owner's private ones (not READY)
 *  fetched with the token into a blob URL. */
export async function imageSrc(photo, variant = "DISPLAY") {
  const url = variant === "THUMBNAIL" ? photo.thumb : photo.url;
  if (!url || photo.status === "READY") return url || "";
  try {
    const response = await fetch(url, { headers: headers() });
    if (!response.ok) return "";
    return URL.createObjectURL(await response.blob());
  } catch {
    return "";
  }
}
