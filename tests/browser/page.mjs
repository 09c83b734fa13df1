// The editor's page in a real browser (Debian's Chromium, driven by
// playwright-core) against a real khulasa server:
//   node tests/browser/page.mjs BASE_URL OUT_DIR
// Pastes a fixture page and checks that what the page marks is exactly what
// the server answered (summary sentences by text and UTF-16 offsets,
// removed blocks greyed with their reasons, evidence coloured), that the
// story shows the page character for character, that errors and a busy
// server are told in words, and that a 50 KB page renders; saves
// screenshots at desktop and phone widths in OUT_DIR.
import assert from "node:assert/strict";
import { readFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const [base, out] = process.argv.slice(2);
if (!base || !out) {
  console.error("usage: node tests/browser/page.mjs BASE_URL OUT_DIR");
  process.exit(2);
}
mkdirSync(out, { recursive: true });
const here = dirname(fileURLToPath(import.meta.url));
const fixture = readFileSync(join(here, "fixtures/page.txt"), "utf8");

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});

let failures = 0;
/// Closes a page, failing if its scripts threw.
async function done(page) {
  const errors = page.errors;
  await page.close();
  assert.deepEqual(errors.map(String), [], "script errors on the page");
}

async function check(name, fn) {
  const t = Date.now();
  try {
    await fn();
    console.log(`ok   ${name} (${((Date.now() - t) / 1000).toFixed(1)} s)`);
  } catch (e) {
    failures++;
    console.log(`FAIL ${name}\n${e.stack || e}`);
  }
}

async function open(viewport) {
  const page = await browser.newPage({ viewport });
  page.errors = [];
  page.on("pageerror", (e) => page.errors.push(e));
  await page.goto(base + "/");
  await page.waitForSelector("#labels option", { state: "attached" });
  return page;
}

/// Pastes `text`, presses Analyse with the keyboard, and returns the
/// server's answer as the page received it.
async function analyze(page, text) {
  await page.fill("#article", text);
  const answer = page.waitForResponse((r) => r.url().endsWith("/v1/analyze"), { timeout: 180_000 });
  await page.focus("#analyze");
  await page.keyboard.press("Enter");
  const response = await answer;
  return { status: response.status(), body: await response.json() };
}

await check("the page marks exactly what the server answered", async () => {
  const page = await open({ width: 1280, height: 900 });
  const model = await page.textContent("#model");
  assert.match(model, /multilingual-e5-small/);
  const { status, body } = await analyze(page, fixture);
  assert.equal(status, 200);
  await page.waitForSelector("#results:not([hidden])");
  await page.waitForSelector("#status:has-text('Done')");

  // The story area is the page as pasted, character for character.
  assert.equal(await page.textContent("#story"), fixture);

  // Highlighted sentences are the summary's, by text and by offsets.
  const marked = await page.$$eval("#story .sentence.summary", (els) =>
    els.map((e) => ({ index: +e.dataset.index, text: e.textContent, start: +e.dataset.utf16Start, end: +e.dataset.utf16End })));
  const want = body.summary.sentences.map((s) => ({ index: s.index, text: s.text, start: s.span.utf16_start, end: s.span.utf16_end }));
  assert.ok(want.length > 0, "a summary");
  assert.deepEqual(marked, want);
  for (const m of marked) assert.equal(fixture.slice(m.start, m.end), m.text);
  const listed = await page.$$eval("#summary li", (els) => els.map((e) => e.textContent));
  assert.deepEqual(listed, want.map((s) => s.text));

  // Removed blocks are greyed out, each saying why on hover.
  const removed = await page.$$eval("#story .removed", (els) =>
    els.map((e) => ({ text: e.textContent, reason: e.dataset.reason, title: e.title, color: getComputedStyle(e).color })));
  assert.equal(removed.length, body.removed.length);
  assert.ok(removed.length >= 3, "navigation, read-also, related, comments");
  body.removed.forEach((b, i) => {
    assert.equal(removed[i].text, fixture.slice(b.span.utf16_start, b.span.utf16_end));
    assert.equal(removed[i].reason, b.reason);
    assert.match(removed[i].title, /^Removed: /);
    assert.equal(removed[i].color, "rgb(138, 144, 153)");
  });
  assert.ok(removed.some((r) => r.text.includes("اقرأ أيضاً")), "the read-also insert is removed");

  // Each evidence sentence in its own colour.
  const evidence = await page.$$eval("#story .sentence.evidence", (els) =>
    els.map((e) => ({ index: +e.dataset.index, colour: [...e.classList].find((c) => /^e\d$/.test(c)) })));
  const wantEvidence = (body.stance.evidence || []).map((e) => e.sentence).sort((a, b) => a - b);
  assert.deepEqual(evidence.map((e) => e.index).sort((a, b) => a - b), wantEvidence);
  assert.equal(new Set(evidence.map((e) => e.colour)).size, Math.min(evidence.length, 5));

  // Topics as bars, the primary first; stance with its probabilities.
  const topics = await page.$$eval("#topics li", (els) => els.map((e) => e.querySelector(".name").textContent));
  assert.equal(topics.length, body.topics.labels.length);
  assert.equal(topics[0], body.topics.primary.replace(/_/g, " "));
  assert.equal(await page.$$eval("#stance li", (els) => els.length), 4);

  // Right-to-left lines and the English line each take their own direction.
  assert.equal(await page.$eval("#story", (e) => getComputedStyle(e).unicodeBidi), "plaintext");
  await page.screenshot({ path: join(out, "page-desktop.png"), fullPage: true });
  await done(page);
});

await check("a phone-width page lays out and analyses", async () => {
  const page = await open({ width: 390, height: 844 });
  const { status } = await analyze(page, fixture);
  assert.equal(status, 200);
  await page.waitForSelector("#results:not([hidden])");
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 1, `no sideways scrolling (${overflow} px)`);
  await page.screenshot({ path: join(out, "page-phone.png"), fullPage: true });
  await done(page);
});

await check("an invalid request shows the server's message", async () => {
  const page = await open({ width: 1280, height: 900 });
  const { status, body } = await analyze(page, "");
  assert.equal(status, 400);
  await page.waitForSelector("#error:not([hidden])");
  const shown = await page.textContent("#error");
  assert.ok(shown.includes(body.message), `${shown} / ${body.message}`);
  assert.ok(body.field_violations.every((v) => shown.includes(v.field)));
  await done(page);
});

await check("a busy server is told in words, with when to retry", async () => {
  const page = await open({ width: 1280, height: 900 });
  await page.route("**/v1/analyze", (route) => route.fulfill({
    status: 429,
    headers: { "content-type": "application/json", "retry-after": "1" },
    body: JSON.stringify({ code: "RESOURCE_EXHAUSTED", message: "the server is at capacity; retry with backoff", field_violations: [] }),
  }));
  await analyze(page, fixture);
  await page.waitForSelector("#error:not([hidden])");
  assert.match(await page.textContent("#error"), /busy.*1 s/);
  await done(page);
});

await check("a 50 KB page renders and stays usable", async () => {
  const page = await open({ width: 1280, height: 900 });
  // The fixture's story paragraphs, numbered so none repeats, between its
  // head and its tail (related list, comments).
  const parts = fixture.split("\n\n");
  const [head, story, tail] = [parts[0], parts.slice(1, -2), parts.slice(-2)];
  const body = [];
  for (let n = 1; new TextEncoder().encode(body.join("\n\n")).length < 50_000; n++) {
    for (const p of story) body.push(p.replace(/\.$/, ` (${n}).`));
  }
  const big = [head, ...body, ...tail].join("\n\n");
  const t = Date.now();
  const answer = await analyze(page, big);
  assert.equal(answer.status, 200);
  await page.waitForSelector("#status:has-text('Done')");
  assert.equal(await page.textContent("#story"), big);
  const spans = await page.$$eval("#story .sentence", (els) => els.length);
  assert.equal(spans, answer.body.sentences.length);
  assert.ok(spans > 100, `${spans} sentences`);
  // Still answers input at once.
  const t2 = Date.now();
  await page.fill("#target", "test");
  console.log(`     50 KB page: ${spans} sentences, answer and render ${((Date.now() - t) / 1000).toFixed(1)} s, typing after ${(Date.now() - t2)} ms`);
  await done(page);
});

await browser.close();
if (failures) {
  console.log(`${failures} browser check(s) failed`);
  process.exit(1);
}
console.log("every browser check passed");
