// The GraphQL-over-HTTP conformance audit of graphql-http (npm), against a running service.
//   npm install --prefix /tmp/ghttp graphql-http graphql
//   NODE_PATH=/tmp/ghttp/node_modules node bench/graphql_http_audit.mjs http://127.0.0.1:8000/graphql
// Prints every audit that is not "ok", then the counts; exits 1 on any warning or error.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { auditServer } = require('graphql-http');
const results = await auditServer({ url: process.argv[2] ?? 'http://127.0.0.1:8000/graphql' });
const counts = { ok: 0, warn: 0, error: 0 };
for (const result of results) {
  counts[result.status] += 1;
  if (result.status !== 'ok') console.log(result.status.toUpperCase(), result.id, result.name, '-', result.reason);
}
console.log(JSON.stringify(counts));
process.exit(counts.warn + counts.error > 0 ? 1 : 0);
