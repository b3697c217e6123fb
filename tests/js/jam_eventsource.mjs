// jmap-jam's own EventSource support (JamClient.connectEventSource) against a live server: the
// stream it opens from the session's eventSourceUrl hears the StateChange of a Mailbox/set that
// jam then makes over HTTP. Driven by mail/tests/test_live_clients.py:
//
//   JMAP_SESSION_URL=http://host/jmap/session JMAP_BEARER=sw1.… node jam_eventsource.mjs
//
// jam builds the URL and calls the global EventSource with it alone. Node 20 has no global
// EventSource, so the `eventsource` package (npm) stands in, as in a Node application; and like a
// browser's, it is given no Authorization header: it opens the stream with a token from
// /api/token/eventsource in the query (docs/push.md), which the page asks for with its credentials.
import assert from "node:assert/strict";

import { EventSource } from "eventsource";
import JamClient from "jmap-jam";

const sessionUrl = process.env.JMAP_SESSION_URL;
const bearerToken = process.env.JMAP_BEARER;
assert.ok(sessionUrl && bearerToken, "JMAP_SESSION_URL and JMAP_BEARER");

const jam = new JamClient({ sessionUrl, bearerToken });
assert.equal(typeof jam.connectEventSource, "function", "this jmap-jam has no connectEventSource");
const accountId = await jam.getPrimaryAccount();

const tokenResponse = await fetch(new URL("/api/token/eventsource", sessionUrl), {
  headers: { Authorization: `Bearer ${bearerToken}` },
});
assert.equal(tokenResponse.status, 200, await tokenResponse.clone().text());
const token = await tokenResponse.text();
const opened = [];
globalThis.EventSource = class extends EventSource {
  constructor(url, init) {
    opened.push(String(url));
    super(`${url}&token=${encodeURIComponent(token)}`, init);
  }
};

const source = await jam.connectEventSource({ types: ["Mailbox"], ping: 0 });
assert.equal(opened.length, 1);
const expanded = new URL(opened[0]);
assert.equal(expanded.searchParams.get("types"), "Mailbox", opened[0]);
assert.equal(expanded.searchParams.get("closeafter"), "no");
assert.equal(expanded.searchParams.get("ping"), "0");

const within = (ms, what) => new Promise((_, reject) => setTimeout(() => reject(new Error(`no ${what} in ${ms} ms`)), ms));
await Promise.race([
  new Promise((resolve, reject) => {
    source.onopen = resolve;
    source.onerror = (e) => reject(new Error(`the stream failed: ${e.message ?? e.code ?? e.type}`));
  }),
  within(10000, "open stream"),
]);
const heard = new Promise((resolve) => source.addEventListener("state", (e) => resolve(JSON.parse(e.data))));

const [created] = await jam.api.Mailbox.set({ accountId, create: { m: { name: `jam-push-${Date.now()}` } } });
assert.ok(created.created?.m?.id, JSON.stringify(created));
const change = await Promise.race([heard, within(10000, "StateChange")]);
source.close();

assert.equal(change["@type"], "StateChange");
assert.deepEqual(Object.keys(change.changed), [accountId]);
assert.equal(change.changed[accountId].Mailbox, created.newState);
console.log(JSON.stringify({ accountId, state: created.newState }));
