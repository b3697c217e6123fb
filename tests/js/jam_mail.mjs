// A mail client's day through jmap-jam (npm), against a live server, with a Bearer token from
// that server's OAuth. Driven by mail/tests/test_live_clients.py:
//
//   JMAP_SESSION_URL=http://host/jmap/session JMAP_BEARER=sw1.… node jam_mail.mjs a.eml b.eml …
//
// Every step checks its own answer (node:assert) and exits non-zero on the first surprise. The
// last line of stdout is a JSON summary the Python test checks against the server once more.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { basename } from "node:path";

import JamClient from "jmap-jam";

const sessionUrl = process.env.JMAP_SESSION_URL;
const bearerToken = process.env.JMAP_BEARER;
const files = process.argv.slice(2);
assert.ok(sessionUrl && bearerToken && files.length >= 2, "JMAP_SESSION_URL, JMAP_BEARER and two .eml files");

const jam = new JamClient({ sessionUrl, bearerToken });
const MAIL = "urn:ietf:params:jmap:mail";

// --- the session -------------------------------------------------------------------------------
const session = await jam.session;
assert.ok(session.capabilities?.[MAIL], `no mail capability in ${JSON.stringify(session).slice(0, 300)}`);
assert.ok(session.capabilities["urn:ietf:params:jmap:submission"]);
const accountId = await jam.getPrimaryAccount();
assert.ok(accountId && session.accounts[accountId], "the primary mail account is one of the session's accounts");
assert.equal(session.accounts[accountId].accountCapabilities[MAIL].maxMailboxDepth, 10);

// --- Mailbox/get -------------------------------------------------------------------------------
const [boxes] = await jam.api.Mailbox.get({ accountId, ids: null });
const byRole = Object.fromEntries(boxes.list.filter((m) => m.role).map((m) => [m.role, m]));
for (const role of ["inbox", "drafts", "sent", "trash", "junk", "archive"]) {
  assert.ok(byRole[role], `no ${role} mailbox`);
}
const inbox = byRole.inbox.id;
const archive = byRole.archive.id;
assert.equal(byRole.inbox.totalEmails, 0);

// The state every later /changes starts from.
const [before] = await jam.api.Email.get({ accountId, ids: [] });
assert.deepEqual(before.list, []);
const state0 = before.state;

// --- upload + Email/import ---------------------------------------------------------------------
const raws = {};
const emails = {};
for (const [i, path] of files.entries()) {
  const raw = await readFile(path);
  const uploaded = await jam.uploadBlob(accountId, new Blob([raw], { type: "message/rfc822" }));
  assert.equal(uploaded.size, raw.length, `${basename(path)}: the upload's size`);
  assert.equal(uploaded.accountId, accountId);
  raws[uploaded.blobId] = raw;
  emails[`m${i}`] = { blobId: uploaded.blobId, mailboxIds: { [inbox]: true }, keywords: i ? {} : { $seen: true } };
}
const [imported] = await jam.api.Email.import({ accountId, emails });
assert.equal(imported.notCreated, null, JSON.stringify(imported.notCreated));
assert.equal(imported.oldState, state0);
const created = Object.fromEntries(Object.entries(imported.created).map(([k, v]) => [k, v]));
const ids = Object.keys(emails).map((k) => created[k].id);
for (const k of Object.keys(emails)) {
  assert.equal(created[k].blobId, emails[k].blobId, "an imported message keeps its blob");
  assert.equal(created[k].size, raws[emails[k].blobId].length);
}

// --- Email/query with a result reference to Email/get -------------------------------------------
const [listed] = await jam.requestMany((t) => {
  const query = t.Email.query({
    accountId, filter: { inMailbox: inbox }, sort: [{ property: "receivedAt", isAscending: false }],
    calculateTotal: true,
  });
  const got = t.Email.get({
    accountId, ids: query.$ref("/ids"),
    properties: ["id", "blobId", "threadId", "mailboxIds", "keywords", "size", "subject", "from", "preview"],
  });
  return { query, got };
});
assert.equal(listed.query.total, ids.length);
assert.deepEqual(new Set(listed.query.ids), new Set(ids));
assert.deepEqual(listed.got.list.map((e) => e.id), listed.query.ids, "get answers in the order asked");
for (const e of listed.got.list) {
  assert.deepEqual(e.mailboxIds, { [inbox]: true });
  assert.equal(e.size, raws[e.blobId].length);
  assert.equal(typeof e.preview, "string");
}
const first = created.m0.id;
const second = created.m1.id;
assert.deepEqual(listed.got.list.find((e) => e.id === first).keywords, { $seen: true });

// --- Email/set: keywords and mailboxIds patches -------------------------------------------------
const [state1Get] = await jam.api.Email.get({ accountId, ids: [] });
const state1 = state1Get.state;
const [patched] = await jam.api.Email.set({
  accountId,
  ifInState: state1,
  update: {
    [first]: { "keywords/$seen": null, "keywords/$flagged": true },
    [second]: { [`mailboxIds/${inbox}`]: null, [`mailboxIds/${archive}`]: true },
  },
});
assert.equal(patched.notUpdated, null, JSON.stringify(patched.notUpdated));
assert.deepEqual(Object.keys(patched.updated).sort(), [first, second].sort());
assert.equal(patched.oldState, state1);
const [afterPatch] = await jam.api.Email.get({ accountId, ids: [first, second], properties: ["keywords", "mailboxIds"] });
assert.deepEqual(afterPatch.list[0].keywords, { $flagged: true });
assert.deepEqual(afterPatch.list[1].mailboxIds, { [archive]: true });
// A hostile patch path is the RFC's SetError, never a partial write.
const [refused] = await jam.api.Email.set({ accountId, update: { [first]: { "keywords/$seen/x": true } } });
assert.equal(refused.notUpdated[first].type, "invalidPatch");

// --- Email/changes ------------------------------------------------------------------------------
const [sinceStart] = await jam.api.Email.changes({ accountId, sinceState: state0 });
assert.deepEqual(new Set(sinceStart.created), new Set(ids));
assert.equal(sinceStart.hasMoreChanges, false);
const [sincePatch] = await jam.api.Email.changes({ accountId, sinceState: state1 });
assert.deepEqual(new Set(sincePatch.updated), new Set([first, second]));
assert.deepEqual(sincePatch.created, []);
assert.equal(sincePatch.newState, patched.newState);

// --- Thread/get ---------------------------------------------------------------------------------
const threadIds = [...new Set(listed.got.list.map((e) => e.threadId))];
const [threads] = await jam.api.Thread.get({ accountId, ids: threadIds });
assert.equal(threads.list.length, threadIds.length);
const threaded = threads.list.flatMap((t) => t.emailIds);
assert.deepEqual(new Set(threaded), new Set(ids), "every email is in exactly its thread");

// --- SearchSnippet/get --------------------------------------------------------------------------
const word = process.env.JMAP_SEARCH_WORD || "Thursday";
const [found] = await jam.requestMany((t) => {
  const query = t.Email.query({ accountId, filter: { text: word } });
  const snippets = t.SearchSnippet.get({ accountId, filter: { text: word }, emailIds: query.$ref("/ids") });
  return { query, snippets };
});
assert.ok(found.query.ids.length >= 1, `nothing found for ${word}`);
assert.equal(found.snippets.list.length, found.query.ids.length);
assert.ok(found.snippets.list.some((s) => (s.preview || "").includes(`<mark>${word}</mark>`) ||
  (s.subject || "").includes(`<mark>${word}</mark>`)), JSON.stringify(found.snippets.list));

// --- Identity/get -------------------------------------------------------------------------------
const [identities] = await jam.api.Identity.get({ accountId, ids: null });
assert.ok(identities.list.some((i) => i.email === session.username), JSON.stringify(identities.list));

// --- Blob download: every message, byte for byte ------------------------------------------------
for (const [blobId, raw] of Object.entries(raws)) {
  const response = await jam.downloadBlob({ accountId, blobId, mimeType: "message/rfc822", fileName: "m.eml" });
  assert.equal(response.headers.get("content-type").split(";")[0], "message/rfc822");
  const body = Buffer.from(await response.arrayBuffer());
  assert.ok(body.equals(raw), `${blobId}: the downloaded message differs from the one uploaded`);
}

// --- another account's ids are not found --------------------------------------------------------
const [none] = await jam.api.Email.get({ accountId, ids: ["zzzzzz"], properties: ["id"] });
assert.deepEqual(none.notFound, ["zzzzzz"]);

console.log(JSON.stringify({ accountId, ids, state0, state1, patchedState: patched.newState, first, second }));
