// A small graphql-transport-ws client (the protocol of the `graphql-ws` library): one socket for every
// subscription, opened when the first one starts and closed when the last one ends. The token goes in
// connection_init. A socket closed by the service with 4403 (the token expired) or 4401 is reopened
// with a fresh token, and the subscriptions still running are sent again: `tagSuggestionsReady` answers
// at once when its photo is already past PROCESSING, so nothing is missed by reconnecting.
// A 4403 before the ack is a refused connection_init, and the protocol carries no reason with it: the
// same token is tried once over HTTP, whose answer has the code (UNAUTHENTICATED, FORBIDDEN for an
// erased account), so the player reads why instead of the socket retrying for nothing.

import { gql } from "./api.js";
import { idToken, tokenRefused } from "./auth.js";
import { ServiceError } from "./errors.js";

const PROTOCOL = "graphql-transport-ws";
const RETRY_MS = [500, 1000, 2000, 5000, 10000];

let socket = null;
let acknowledged = false;
let retries = 0;
let nextId = 1;
const operations = new Map(); // id -> {payload, sink}

function endpoint() {
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/graphql`;
}

function sendJson(message) {
  socket.send(JSON.stringify(message));
}

function open() {
  acknowledged = false;
  const opened = new WebSocket(endpoint(), PROTOCOL);
  socket = opened;
  opened.onopen = () => {
    const token = idToken();
    sendJson({ type: "connection_init", payload: token ? { Authorization: `Bearer ${token}` } : {} });
  };
  opened.onmessage = (event) => socket === opened && receive(JSON.parse(event.data));
  opened.onclose = (event) => socket === opened && closed(event);
}

function receive(message) {
  const operation = message.id ? operations.get(message.id) : null;
  switch (message.type) {
    case "connection_ack":
      acknowledged = true;
      retries = 0;
      for (const [id, op] of operations) sendJson({ id, type: "subscribe", payload: op.payload });
      break;
    case "ping":
      sendJson({ type: "pong" });
      break;
    case "next":
      if (operation) {
        const errors = message.payload.errors;
        if (errors?.length) operation.sink.error(new ServiceError(errors[0].message, errors[0].extensions));
        else operation.sink.next(message.payload.data);
      }
      break;
    case "error":
      if (operation) {
        operations.delete(message.id);
        const first = message.payload?.[0] || {};
        operation.sink.error(new ServiceError(first.message || "subscription refused", first.extensions));
      }
      break;
    case "complete":
      if (operation) {
        operations.delete(message.id);
        operation.sink.complete();
      }
      break;
    default:
      break;
  }
  if (!operations.size) shutDown();
}

function failAll(error) {
  for (const op of operations.values()) op.sink.error(error);
  operations.clear();
}

/** Why the service refused this token, or null when HTTP takes it (then the socket is tried again). */
async function refusal() {
  try {
    await gql("query Probe { __typename }");
    return null;
  } catch (error) {
    return ["UNAUTHENTICATED", "FORBIDDEN"].includes(error.code) ? error : null;
  }
}

async function closed(event) {
  const wasAcknowledged = acknowledged;
  socket = null;
  acknowledged = false;
  if (!operations.size) return;
  if (event.code === 4403 && !wasAcknowledged) {
    const error = await refusal(); // an UNAUTHENTICATED answer has already dropped the token (api.js)
    if (error) {
      failAll(error);
      return;
    }
  } else if (event.code === 4403 || event.code === 4401) {
    tokenRefused(); // expired while open: a fresh one for the next socket
  }
  const wait = RETRY_MS[Math.min(retries, RETRY_MS.length - 1)];
  retries += 1;
  if (retries > 8) {
    failAll(new ServiceError("websocket closed", { code: "NETWORK" }));
    return;
  }
  setTimeout(() => operations.size && !socket && open(), wait);
}

function shutDown() {
  const closing = socket;
  socket = null;
  acknowledged = false;
  if (closing && closing.readyState <= WebSocket.OPEN) closing.close(1000, "done");
}

/** Start a subscription; `sink` gets next(data), error(ServiceError), complete(). Returns a stop function. */
export function subscribe(query, variables, sink) {
  const id = String(nextId++);
  const payload = { query, variables };
  operations.set(id, { payload, sink });
  if (!socket) open();
  else if (acknowledged) sendJson({ id, type: "subscribe", payload });
  return () => {
    if (!operations.delete(id)) return;
    if (socket && acknowledged) sendJson({ id, type: "complete" });
    if (!operations.size) shutDown();
  };
}

/** The token changed (sign-in, sign-out): a new socket for what runs next. */
export function resetConnection() {
  operations.clear();
  shutDown();
}
