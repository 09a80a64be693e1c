// Errors in words: the service says what happened in `extensions.code` (README, "API for client
// developers"); the page says it to the player. The server's message is only a fallback.

const UPLOAD_REASONS = {
  EMPTY: "That file is empty.",
  TOO_LARGE: "That photo is too large to upload.",
  NOT_AN_IMAGE: "That file is not a photo.",
  UNSUPPORTED_FORMAT: "That image format is not supported: try a JPEG, PNG, WebP or HEIC photo.",
  TRUNCATED: "That photo is incomplete (the file was cut short): try it again.",
  TOO_MANY_PIXELS: "That photo has too many pixels: try a smaller one.",
  TYPE_MISMATCH: "That file is not what its name says it is.",
};

const WORDS = {
  UNAUTHENTICATED: "Your sign-in is missing or has expired: sign in again.",
  FORBIDDEN: "That is not yours to change.",
  NOT_FOUND: "That photo no longer exists.",
  DUEL_EXPIRED: "That duel expired: here is a fresh one.",
  ALREADY_VOTED: "You have already judged that pair.",
  DISPLAY_NAME_TAKEN: "Someone already uses that name: pick another.",
  UNAVAILABLE: "The service is briefly unavailable: try again in a moment.",
  PAYLOAD_TOO_LARGE: "That photo is too large to upload.",
  QUERY_TOO_COSTLY: "That request asks for too much at once.",
  PERSISTED_QUERY_NOT_FOUND: "The app is out of date: reload the page.",
  OPERATION_NOT_ALLOWED: "The app is out of date: reload the page.",
  NETWORK: "Cannot reach PhotoDuel: check your connection.",
};

/** An error the service answered, with its `extensions` (and the HTTP status when the whole request was
 *  refused: a FORBIDDEN 403 before any field ran is the account itself, erased). */
export class ServiceError extends Error {
  constructor(message, extensions = {}, status = null) {
    super(message);
    this.code = extensions.code || "INTERNAL_SERVER_ERROR";
    this.extensions = extensions;
    this.status = status;
  }
}

/** What to tell the player about `error` (a ServiceError, a GraphQL error object, or anything thrown). */
export function inWords(error) {
  const ext = error?.extensions || {};
  const code = error?.code || ext.code;
  if (code === "RATE_LIMITED") {
    const wait = Math.max(1, Math.ceil(Number(ext.retryAfter) || 1));
    return `Slow down: try again in ${wait} second${wait === 1 ? "" : "s"}.`;
  }
  if (code === "BAD_USER_INPUT") {
    if (ext.reason && UPLOAD_REASONS[ext.reason]) return UPLOAD_REASONS[ext.reason];
    if (ext.argument === "name") return `That name cannot be used: ${error.message}.`;
    return `That was not accepted: ${error.message}.`;
  }
  if (code === "FORBIDDEN" && error?.status === 403) return "This account has been deleted: sign out.";
  if (code && WORDS[code]) return WORDS[code];
  if (code === "INTERNAL_SERVER_ERROR" || code === undefined) {
    const id = ext.requestId ? ` (request ${ext.requestId})` : "";
    return `Something went wrong on our side${id}: try again.`;
  }
  return error?.message || "Something went wrong: try again.";
}
