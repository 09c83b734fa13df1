// khulasa's editor page: paste or drop an article, see its main story,
// what was removed and why, the summary and the stance evidence marked in
// the page, topics and stance as bars. Talks to this server's HTTP/JSON
// API (/v1/info, /v1/analyze); offsets are UTF-16 units, as JS indexes.
"use strict";

const $ = (id) => document.getElementById(id);
const STANCE_NAMES = {
  STANCE_LABEL_SUPPORTIVE: "supportive",
  STANCE_LABEL_NEUTRAL: "neutral",
  STANCE_LABEL_CRITICAL: "critical",
  STANCE_LABEL_UNRELATED: "unrelated",
};
const CLAIM_NAMES = {
  STANCE_LABEL_SUPPORTIVE: "agrees",
  STANCE_LABEL_NEUTRAL: "discusses",
  STANCE_LABEL_CRITICAL: "disputes",
  STANCE_LABEL_UNRELATED: "does not address it",
};
const REASONS = {
  navigation: "site navigation",
  read_also: "a \u201cread also\u201d insert",
  appended_story: "another story appended after the article",
  related_list: "a list of related headlines",
  source_credit: "a source or credit line",
  tags: "tags",
  comments: "reader comments",
  media_remnant: "what is left of a video or photo widget",
  duplicate_title: "the title repeated",
  footer: "page footer",
  other: "not part of the story",
};
const EVIDENCE_COLOURS = 5;

let lastResult = null;

function headers() {
  const h = { "content-type": "application/json", "x-request-timeout": "120s" };
  const key = $("key").value.trim();
  if (key) h.authorization = "Bearer " + key;
  return h;
}

function setStatus(text) {
  $("status").textContent = text;
}

function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
}

function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else e.setAttribute(k, v);
  }
  if (text !== undefined) e.textContent = text;
  return e;
}

// An error answer in words: what happened and, for bad input, which field.
function showError(status, body, retryAfter) {
  const box = $("error");
  clear(box);
  let title;
  if (status === 429) {
    title = "The server is busy (its queue is full). Try again in " + (retryAfter || "a few") + " s.";
  } else if (status === 401) {
    title = "This server needs an API key: enter it above. (" + (body && body.message || "unauthenticated") + ")";
  } else if (status === 503) {
    title = "The server is not ready (the model may still be loading). Try again in " + (retryAfter || "a few") + " s.";
  } else if (status === 504) {
    title = "The analysis took longer than allowed; try a shorter article.";
  } else if (status === 413) {
    title = "The article is too large for this server. " + (body && body.message || "");
  } else if (status === 0) {
    title = "Could not reach the server: " + (body && body.message || "network error");
  } else {
    title = (body && body.message) || ("The server answered " + status);
  }
  box.appendChild(el("p", { class: "error-message" }, title));
  const violations = (body && body.field_violations) || [];
  if (violations.length) {
    const ul = el("ul");
    for (const v of violations) ul.appendChild(el("li", {}, v.field + ": " + v.description));
    box.appendChild(ul);
  }
  box.hidden = false;
}

async function loadInfo() {
  try {
    const r = await fetch("/v1/info", { headers: headers() });
    const body = await r.json().catch(() => null);
    if (!r.ok) {
      $("model").textContent = r.status === 401 ? "Enter the API key to connect." : "Server: " + ((body && body.message) || r.status);
      return;
    }
    const m = body.model || {};
    $("model").textContent = "Model " + m.id + " (" + m.dim + " dimensions, " + m.device + "), khulasa " + body.version;
    const select = $("labels");
    const chosen = select.value || body.default_label_set;
    clear(select);
    for (const s of body.label_sets) {
      const o = el("option", { value: s.name }, s.name + (s.description ? " \u2014 " + s.description : ""));
      if (s.name === chosen) o.selected = true;
      select.appendChild(o);
    }
    $("target").placeholder = body.default_target_description || "";
    $("focus").placeholder = body.default_focus || "";
  } catch (e) {
    $("model").textContent = "Could not reach the server.";
  }
}

function looksLikeHtml(text) {
  return /^\s*</.test(text) && /<(html|body|article|div|p|section|main|span|h[1-6])[\s>]/i.test(text);
}

function buildRequest(text) {
  const format = $("format").value;
  const html = format === "html" || (format === "auto" && looksLikeHtml(text));
  const article = { id: "page" };
  if (html) article.html = text;
  else article.text = text;
  const options = {};
  if ($("labels").value) options.label_set_name = $("labels").value;
  const target = $("target").value.trim();
  if (target) options.target = target;
  options.target_kind = $("target-kind").value;
  options.generic_summary = $("mode").value === "generic";
  const focus = $("focus").value.trim();
  if (focus && !options.generic_summary) options.focus = focus;
  const n = parseInt($("length").value, 10);
  if (n > 0) options.max_sentences = n;
  return { html, request: { article, options } };
}

function bars(list, items) {
  clear(list);
  for (const [name, p, top] of items) {
    const li = el("li", top ? { class: "top" } : {});
    li.appendChild(el("span", { class: "name" }, name));
    const bar = el("span", { class: "bar", role: "img", "aria-label": name + " " + Math.round(p * 100) + "%" });
    const fill = el("span");
    fill.style.width = Math.max(0, Math.min(100, p * 100)).toFixed(1) + "%";
    bar.appendChild(fill);
    li.appendChild(bar);
    li.appendChild(el("span", { class: "value" }, p.toFixed(2)));
    list.appendChild(li);
  }
}

// The page as sent (for HTML: the text extracted from it), with every
// sentence of the main story and every removed block as its own element.
function renderStory(source, result, evidence, summary) {
  const story = $("story");
  clear(story);
  const marks = [];
  for (const b of result.removed || []) {
    marks.push({ start: b.span.utf16_start, end: b.span.utf16_end, removed: b.reason });
  }
  for (const s of result.sentences || []) {
    marks.push({ start: s.span.utf16_start, end: s.span.utf16_end, sentence: s });
  }
  marks.sort((a, b) => a.start - b.start || b.end - a.end);
  const frag = document.createDocumentFragment();
  let at = 0;
  for (const m of marks) {
    if (m.start < at) continue; // nested in what is already shown
    if (m.start > at) frag.appendChild(document.createTextNode(source.slice(at, m.start)));
    const text = source.slice(m.start, m.end);
    if (m.removed !== undefined) {
      const why = REASONS[m.removed] || m.removed.replace(/_/g, " ");
      frag.appendChild(el("span", { class: "removed", title: "Removed: " + why, "data-reason": m.removed }, text));
    } else {
      const s = m.sentence;
      const classes = ["sentence"];
      const attrs = {
        "data-index": String(s.index),
        "data-utf16-start": String(m.start),
        "data-utf16-end": String(m.end),
      };
      const titles = [];
      if (summary.has(s.index)) {
        classes.push("summary");
        titles.push("in the summary");
      }
      if (evidence.has(s.index)) {
        const k = evidence.get(s.index);
        classes.push("evidence", "e" + (k % EVIDENCE_COLOURS));
        titles.push("stance evidence " + (k + 1));
      }
      attrs.class = classes.join(" ");
      if (titles.length) attrs.title = titles.join("; ");
      frag.appendChild(el("span", attrs, text));
    }
    at = m.end;
  }
  if (at < source.length) frag.appendChild(document.createTextNode(source.slice(at)));
  story.appendChild(frag);
}

function render(source, result) {
  const t = result.topics;
  if (t) {
    bars($("topics"), t.labels.map((l) => [l.label.replace(/_/g, " ") + (l.code ? " (" + l.code + ")" : ""), l.probability, l.label === t.primary]));
  } else {
    clear($("topics"));
  }
  const s = result.stance;
  const evidence = new Map();
  if (s) {
    const claim = $("target-kind").value === "TARGET_KIND_CLAIM";
    const names = claim ? CLAIM_NAMES : STANCE_NAMES;
    $("stance-label").textContent = "Toward \u201c" + s.target + "\u201d: " + (names[s.label] || s.label);
    bars($("stance"), [
      [names.STANCE_LABEL_SUPPORTIVE, s.supportive || 0, s.label === "STANCE_LABEL_SUPPORTIVE"],
      [names.STANCE_LABEL_NEUTRAL, s.neutral || 0, s.label === "STANCE_LABEL_NEUTRAL"],
      [names.STANCE_LABEL_CRITICAL, s.critical || 0, s.label === "STANCE_LABEL_CRITICAL"],
      [names.STANCE_LABEL_UNRELATED, s.unrelated || 0, s.label === "STANCE_LABEL_UNRELATED"],
    ]);
    (s.evidence || []).forEach((e, k) => evidence.set(e.sentence, k));
    const x = Math.max(-1, Math.min(1, s.cooperation_conflict || 0));
    $("coop-value").textContent = x.toFixed(2);
    $("coop-marker").style.left = ((x + 1) * 50).toFixed(1) + "%";
    $("coop").hidden = false;
  } else {
    $("stance-label").textContent = "No stance asked.";
    clear($("stance"));
    $("coop").hidden = true;
  }
  const summary = new Set();
  const list = $("summary");
  clear(list);
  const sum = result.summary;
  if (sum && sum.sentences && sum.sentences.length) {
    for (const x of sum.sentences) {
      summary.add(x.index);
      list.appendChild(el("li", { "data-index": String(x.index) }, x.text));
    }
  } else {
    list.appendChild(el("li", {}, sum && sum.status === "SUMMARY_STATUS_NO_RELEVANT_CONTENT" ? "Nothing in the story is about the focus." : "No summary."));
  }
  renderStory(source, result, evidence, summary);
  $("results").hidden = false;
}

async function analyze(event) {
  event.preventDefault();
  $("error").hidden = true;
  const text = $("article").value;
  const { html, request } = buildRequest(text);
  $("analyze").disabled = true;
  setStatus("Analysing\u2026");
  const started = performance.now();
  let r;
  try {
    r = await fetch("/v1/analyze", { method: "POST", headers: headers(), body: JSON.stringify(request) });
  } catch (e) {
    $("analyze").disabled = false;
    setStatus("");
    showError(0, { message: String(e) });
    return;
  }
  const body = await r.json().catch(() => null);
  $("analyze").disabled = false;
  if (!r.ok) {
    setStatus("");
    showError(r.status, body, r.headers.get("retry-after"));
    return;
  }
  lastResult = body;
  $("copy").disabled = false;
  const source = html ? body.extracted_text || "" : text;
  render(source, body);
  setStatus("Done in " + ((performance.now() - started) / 1000).toFixed(1) + " s" + (body.truncated ? " (only the first sentences were analysed)" : "") + ".");
}

async function copyJson() {
  if (!lastResult) return;
  const json = JSON.stringify(lastResult, null, 2);
  try {
    await navigator.clipboard.writeText(json);
    setStatus("Copied the result as JSON.");
  } catch (e) {
    setStatus("Could not copy (the browser refused); the JSON is in the console.");
    console.log(json);
  }
}

async function readFile() {
  const f = $("file").files[0];
  if (!f) return;
  $("article").value = await f.text();
  if (/\.html?$/i.test(f.name)) $("format").value = "html";
  else if (/\.txt$/i.test(f.name)) $("format").value = "text";
  setStatus("Loaded " + f.name + " (" + Math.round(f.size / 1024) + " KB).");
}

$("form").addEventListener("submit", analyze);
$("copy").addEventListener("click", copyJson);
$("file").addEventListener("change", readFile);
$("key").addEventListener("change", loadInfo);
$("mode").addEventListener("change", () => { $("focus").disabled = $("mode").value === "generic"; });
// Drop a file anywhere on the text area.
$("article").addEventListener("dragover", (e) => e.preventDefault());
$("article").addEventListener("drop", async (e) => {
  e.preventDefault();
  const f = e.dataTransfer.files[0];
  if (!f) return;
  $("article").value = await f.text();
  if (/\.html?$/i.test(f.name)) $("format").value = "html";
});
loadInfo();
