// runbox playground: an editor, a run over the /v1/run/stream WebSocket
// (output as it comes, typed input while the program runs), test cases,
// returned files and shareable links. Every URL is relative to the page,
// so the playground works behind a proxy that serves runbox under a prefix.
import { basicSetup, EditorView } from "codemirror";
import { Compartment } from "@codemirror/state";
import { keymap } from "@codemirror/view";
import { indentWithTab } from "@codemirror/commands";
import { StreamLanguage } from "@codemirror/language";
import { python } from "@codemirror/lang-python";
import { cpp } from "@codemirror/lang-cpp";
import { javascript } from "@codemirror/lang-javascript";
import { java } from "@codemirror/lang-java";
import { rust } from "@codemirror/lang-rust";
import { go } from "@codemirror/lang-go";
import { shell } from "@codemirror/legacy-modes/mode/shell";
import { perl } from "@codemirror/legacy-modes/mode/perl";

// Syntax by environment name or alias; anything else is plain text.
const syntax = {
  python: python, py: python, python3: python,
  c: cpp, "c++": cpp, cpp: cpp, gcc: cpp, "g++": cpp,
  javascript: javascript, js: javascript, node: javascript, nodejs: javascript,
  typescript: () => javascript({ typescript: true }), ts: () => javascript({ typescript: true }),
  java: java, rust: rust, go: go,
  bash: () => StreamLanguage.define(shell), sh: () => StreamLanguage.define(shell),
  perl: () => StreamLanguage.define(perl),
};

// A first program for each language.
const templates = {
  python: 'name = input("name? ")\nprint(f"hello, {name}")\n',
  c: '#include <stdio.h>\n\nint main(void) {\n    printf("hello, world\\n");\n    return 0;\n}\n',
  "c++": '#include <iostream>\n\nint main() {\n    std::cout << "hello, world" << std::endl;\n}\n',
  javascript: 'console.log("hello, world");\n',
  java: 'public class Main {\n    public static void main(String[] args) {\n        System.out.println("hello, world");\n    }\n}\n',
  rust: 'fn main() {\n    println!("hello, world");\n}\n',
  go: 'package main\n\nimport "fmt"\n\nfunc main() {\n\tfmt.Println("hello, world")\n}\n',
  bash: 'echo "hello, world"\n',
  perl: 'print "hello, world\\n";\n',
};

const $ = (id) => document.getElementById(id);
const el = (tag, attrs = {}, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  e.append(...kids);
  return e;
};

const state = { envs: [], socket: null, running: false, stopped: false };
const lang = new Compartment();
const editor = new EditorView({
  parent: $("editor"),
  extensions: [
    keymap.of([{ key: "Mod-Enter", run: () => { run(); return true; } }, indentWithTab]),
    basicSetup,
    lang.of([]),
  ],
});
// Tests and scripts reach the editor through the page.
window.playground = {
  get program() { return editor.state.doc.toString(); },
  set program(text) { setProgram(text); },
};

function setProgram(text) {
  editor.dispatch({ changes: { from: 0, to: editor.state.doc.length, insert: text } });
}

function currentEnv() {
  return state.envs.find((e) => e.name === $("language").value);
}

function applyLanguage(previous) {
  const env = currentEnv();
  const names = env ? [env.name, ...(env.aliases || [])] : [];
  const make = names.map((n) => syntax[n]).find(Boolean);
  editor.dispatch({ effects: lang.reconfigure(make ? make() : []) });
  // A template left as it was gives way to the new language's.
  const text = editor.state.doc.toString();
  if (text.trim() === "" || text === templates[previous]) setProgram(templates[env?.name] ?? "");
}

// ---- sharing: language, program and stdin in the URL fragment ----

function b64urlEncode(text) {
  let bin = "";
  for (const b of new TextEncoder().encode(text)) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function b64urlDecode(s) {
  const bin = atob(s.replace(/-/g, "+").replace(/_/g, "/"));
  return new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0)));
}

function share() {
  const frag = b64urlEncode(JSON.stringify({
    language: $("language").value, program: editor.state.doc.toString(), stdin: $("stdin").value,
  }));
  const url = location.href.split("#")[0] + "#" + frag;
  history.replaceState(null, "", "#" + frag);
  const box = $("share-url");
  box.hidden = false;
  box.value = url;
  box.select();
  navigator.clipboard?.writeText(url).catch(() => {});
}

function restore() {
  if (location.hash.length < 2) return null;
  try {
    const s = JSON.parse(b64urlDecode(location.hash.slice(1)));
    return typeof s === "object" && s ? s : null;
  } catch {
    return null;
  }
}

// ---- test cases ----

function addCase(stdin = "", expected = "") {
  const row = el("div", { class: "case" },
    el("label", {}, "stdin", el("textarea", { rows: "2", class: "case-stdin", spellcheck: "false" })),
    el("label", {}, "expected", el("textarea", { rows: "2", class: "case-expected", spellcheck: "false" })),
    el("span", { class: "case-verdict" }),
    el("button", { class: "remove", title: "remove this case", onclick: () => { row.remove(); countCases(); } }, "×"));
  row.querySelector(".case-stdin").value = stdin;
  row.querySelector(".case-expected").value = expected;
  $("cases").append(row);
  countCases();
  return row;
}

function countCases() {
  const n = $("cases").children.length;
  $("cases-count").textContent = n ? `(${n})` : "";
}

function cases() {
  return [...$("cases").children].map((row) => ({
    stdin: row.querySelector(".case-stdin").value,
    expected_output: row.querySelector(".case-expected").value,
  }));
}

// ---- the run ----

// splitArgs splits like a shell would, without expansions: whitespace
// separates, single and double quotes group, a backslash escapes.
function splitArgs(s) {
  const out = [];
  let cur = null, quote = null;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (quote) {
      if (c === quote) quote = null;
      else if (c === "\\" && quote === '"' && i + 1 < s.length) cur += s[++i];
      else cur += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      cur ??= "";
    } else if (c === "\\" && i + 1 < s.length) {
      cur = (cur ?? "") + s[++i];
    } else if (/\s/.test(c)) {
      if (cur !== null) out.push(cur);
      cur = null;
    } else {
      cur = (cur ?? "") + c;
    }
  }
  if (cur !== null) out.push(cur);
  return out;
}

function print(text, cls) {
  const con = $("console");
  const last = con.lastChild;
  if (last && last.className === cls) last.textContent += text;
  else con.append(el("span", { class: cls }, text));
  con.scrollTop = con.scrollHeight;
}

function decodeData(m) {
  if (m.data !== undefined) return m.data;
  if (!m.data_base64) return "";
  const bin = atob(m.data_base64);
  return new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0)));
}

function setVerdict(cls, ...parts) {
  const v = $("verdict");
  v.className = "verdict " + cls;
  v.replaceChildren(...parts);
}

function setRunning(on) {
  state.running = on;
  $("run").disabled = on;
  $("stop").disabled = !on;
  $("input-line").disabled = !on;
  $("eof").disabled = !on;
  if (on) $("input-line").focus();
}

function send(m) {
  if (state.socket?.readyState === WebSocket.OPEN) state.socket.send(JSON.stringify(m));
}

function run() {
  if (state.running) return;
  const env = currentEnv();
  if (!env) return;
  const body = {
    language: env.name,
    files: [{ name: env.source || "main", content: editor.state.doc.toString() }],
  };
  const args = splitArgs($("args").value);
  if (args.length) body.args = args;
  const outputs = $("outputs").value.split(/[\s,]+/).filter(Boolean);
  if (outputs.length) body.outputs = outputs;
  const cs = cases();
  if (cs.length) body.cases = cs;
  for (const v of document.querySelectorAll(".case-verdict")) { v.textContent = ""; v.className = "case-verdict"; }
  $("console").replaceChildren();
  $("case-results").replaceChildren();
  $("files").replaceChildren();
  setVerdict("running", "Running…");
  setRunning(true);
  state.stopped = false;

  const url = new URL("v1/run/stream", location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  url.hash = "";
  if (apiKey()) url.searchParams.set("access_token", apiKey());
  const ws = new WebSocket(url);
  state.socket = ws;
  const streamed = new Set(); // stages that sent output
  let stage = "run", finished = false;
  ws.onopen = () => {
    ws.send(JSON.stringify(body));
    // A stream's stdin comes in messages; the field's text goes first.
    if (!cs.length && $("stdin").value) send({ type: "stdin", data: $("stdin").value });
    if (!cs.length && !$("interactive").checked) send({ type: "close_stdin" });
  };
  ws.onmessage = (ev) => {
    const m = JSON.parse(ev.data);
    switch (m.type) {
      case "stage":
        stage = m.stage === "case" ? `case ${m.index + 1}` : m.stage;
        if (m.stage !== "run" || cs.length) print(`── ${stage} ──\n`, "stage");
        break;
      case "stdout":
      case "stderr":
        streamed.add(stage);
        print(decodeData(m), m.type);
        break;
      case "done":
        finished = true;
        showResponse(typeof m.response === "string" ? JSON.parse(m.response) : m.response, streamed);
        break;
      case "error":
        finished = true;
        showProblem(m.error);
        break;
    }
  };
  ws.onclose = (ev) => {
    if (state.socket === ws) state.socket = null;
    setRunning(false);
    if (finished) return;
    if (state.stopped) setVerdict("bad", el("strong", {}, "stopped"), " the run was cancelled and its box killed");
    else setVerdict("bad", ev.reason ? `Connection closed: ${ev.reason}` : "Connection closed before the result arrived");
  };
}

function stop() {
  // Closing the socket cancels the run: the server kills the box.
  state.stopped = true;
  state.socket?.close();
}

function fmtBytes(n) {
  if (n >= 1 << 20) return (n / (1 << 20)).toFixed(1) + " MiB";
  if (n >= 1 << 10) return (n / (1 << 10)).toFixed(0) + " KiB";
  return n + " B";
}

function stats(r) {
  return el("span", { class: "stats" },
    `${r.wall_time_ms} ms wall · ${r.cpu_time_ms} ms cpu · ${fmtBytes(r.memory_bytes)}`);
}

function describe(r) {
  let s = r.status;
  if (r.status === "runtime_error" && r.signal) s += ` (${r.signal})`;
  else if (r.status === "runtime_error") s += ` (exit ${r.exit_code})`;
  return s.replace(/_/g, " ");
}

function showResponse(resp, streamed) {
  const c = resp.compile;
  if (c && c.status !== "ok") {
    // A compile shared or cached did not stream: show its output now.
    if (!streamed.has("compile")) {
      print("── compile ──\n", "stage");
      if (c.stdout) print(c.stdout, "stdout");
      if (c.stderr) print(c.stderr, "stderr");
    }
    setVerdict("bad", el("strong", {}, "compile error"), " ", c.message || describe(c), stats(c));
    return;
  }
  if (resp.cases && resp.cases.length) {
    const rows = [...$("cases").children];
    let passed = 0;
    resp.cases.forEach((r, i) => {
      const ok = r.verdict === "accepted";
      if (ok) passed++;
      const badge = rows[i]?.querySelector(".case-verdict");
      if (badge) {
        badge.textContent = r.verdict.replace(/_/g, " ");
        badge.className = "case-verdict " + (ok ? "good" : "bad");
      }
      $("case-results").append(el("div", { class: "case-result " + (ok ? "good" : "bad") },
        el("strong", {}, `case ${i + 1}: ${r.verdict.replace(/_/g, " ")}`), stats(r)));
    });
    const all = passed === resp.cases.length;
    setVerdict(all ? "good" : "bad", el("strong", {}, `${passed}/${resp.cases.length} accepted`));
  } else if (resp.run) {
    const r = resp.run;
    if (!streamed.has("run")) {
      if (r.stdout) print(r.stdout, "stdout");
      if (r.stderr) print(r.stderr, "stderr");
    }
    setVerdict(r.status === "ok" ? "good" : "bad", el("strong", {}, describe(r)),
      r.status === "ok" && r.exit_code ? ` exit ${r.exit_code}` : "", r.message ? ` ${r.message}` : "", stats(r));
  }
  showFiles(resp.files || [], resp.files_truncated);
  // The server returns files of a single run only, not of cases.
  if (resp.cases?.length && $("outputs").value.trim())
    $("files").append(el("p", { class: "stats" }, "Returned files come with a run without test cases."));
}

function showFiles(files, truncated) {
  if (!files.length) return;
  const list = el("ul");
  for (const f of files) {
    const a = el("a", { href: "data:application/octet-stream;base64," + (f.content || ""), download: f.name.split("/").pop() }, f.name);
    list.append(el("li", {}, a, el("span", { class: "stats" }, fmtBytes(f.size))));
  }
  $("files").append(el("h2", {}, "Returned files"), list);
  if (truncated) $("files").append(el("p", { class: "bad" }, "more files matched than the answer may carry"));
}

function showProblem(p) {
  p = p || {};
  const detail = (p.errors || []).map((e) => `${e.location || ""}: ${e.message}`).join("; ");
  setVerdict("bad", el("strong", {}, p.title || "error"), " ", p.detail || "", detail ? ` — ${detail}` : "",
    p.request_id ? el("span", { class: "stats" }, `request ${p.request_id}`) : "");
}

// ---- API keys ----

// A server with API keys wants one on every API call. The key is kept for
// this tab only (sessionStorage) and never put in a shared link. Fetches
// send it as a header; a browser's WebSocket cannot, so the stream's URL
// carries it as access_token.
const keyStore = "runbox.api_key";

function apiKey() {
  return $("api-key").value.trim();
}

async function loadEnvironments() {
  const key = apiKey();
  const r = await fetch(new URL("v1/environments", location.href), key ? { headers: { Authorization: "Bearer " + key } } : {});
  if (r.status === 401) {
    $("api-key").hidden = false;
    $("api-key").focus();
    setVerdict("bad", key ? "The API key was refused: enter another." : "This server needs an API key: enter it above.");
    return [];
  }
  if (!r.ok) throw new Error(`GET v1/environments: ${r.status} ${r.statusText}`);
  return r.json();
}

function fillLanguages(envs, want) {
  state.envs = envs;
  const sel = $("language");
  sel.replaceChildren();
  for (const e of envs) {
    const o = el("option", { value: e.name }, e.available ? e.name : `${e.name} (not available)`);
    o.disabled = !e.available;
    sel.append(o);
  }
  const pick = [want, "python", envs.find((e) => e.available)?.name]
    .find((n) => n && envs.some((e) => e.name === n && e.available));
  if (pick) sel.value = pick;
}

// ---- start ----

async function start() {
  const saved = restore();
  const stored = sessionStorage.getItem(keyStore);
  if (stored) {
    $("api-key").value = stored;
    $("api-key").hidden = false;
  }
  try {
    fillLanguages(await loadEnvironments(), saved?.language);
  } catch (e) {
    setVerdict("bad", `Could not list the environments: ${e.message || e}`);
  }
  const sel = $("language");
  let previous = sel.value;
  applyLanguage(null);
  $("api-key").addEventListener("change", async () => {
    sessionStorage.setItem(keyStore, apiKey());
    try {
      fillLanguages(await loadEnvironments(), sel.value);
      if (state.envs.length) setVerdict("idle", "Ready");
    } catch (e) {
      setVerdict("bad", `Could not list the environments: ${e.message || e}`);
    }
    applyLanguage(previous);
    previous = sel.value;
  });
  if (saved) {
    if (typeof saved.program === "string") setProgram(saved.program);
    if (typeof saved.stdin === "string") $("stdin").value = saved.stdin;
  }
  sel.addEventListener("change", () => { applyLanguage(previous); previous = sel.value; });
  $("run").addEventListener("click", run);
  $("stop").addEventListener("click", stop);
  $("share").addEventListener("click", share);
  $("add-case").addEventListener("click", () => { addCase(); $("cases-box").open = true; });
  $("eof").addEventListener("click", () => { send({ type: "close_stdin" }); $("input-line").disabled = true; $("eof").disabled = true; });
  $("input-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const line = $("input-line").value + "\n";
    $("input-line").value = "";
    print(line, "echo");
    send({ type: "stdin", data: line });
  });
  document.body.dataset.ready = "true";
}

start();
