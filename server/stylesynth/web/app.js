// The web control page. Its controls are built from the server's OSCQuery tree (itself generated from
// stylesynth/params.py), values go to the server as OSC over the OSCQuery WebSocket, and LISTEN brings every change
// back, whoever made it (another page, a MIDI knob, TouchOSC), so the page always shows the server's state.

import { encode, decode } from "./osc.js";

const PREFIX = "/stylesynth/";
const SEQ_PATH = "/stylesynth/audio/seq";
const MODEL_PATH = "/stylesynth/model";
const GROUP_TITLES = {
  semantic: "Semantic", sefa: "SeFa directions", latent: "Start point", prior: "Prototype",
  query: "Query (soft prior)", model: "Model", output: "Output",
};
const OPEN_GROUPS = new Set(["semantic", "latent", "prior", "output"]);  // the rest start folded
const SLIDER_MAX_SPAN = 1e6;   // a wider range (the seed) gets a number box and a random button, not a slider
const SEND_EVERY_MS = 25;      // slider moves are sent at most this often (latest wins), well under the rate limit
const MAX_ERRORS = 6;

const controls = new Map();    // OSC path -> {set(value)}
let socket = null;
let tree = null;

// -- small helpers ---------------------------------------------------------------------------------------------

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value !== undefined && value !== null) node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
}

function format(value, type) {
  if (type === "i") return String(Math.round(value));
  return String(Number(Number(value).toFixed(3)));
}

function niceStep(node) {
  if (node.TYPE === "i") return 1;
  const { MIN, MAX } = node.RANGE[0];
  return 10 ** Math.round(Math.log10((MAX - MIN) / 100));   // 10 -> 0.1, 72 -> 1, 1 -> 0.01
}

function methods(node, out = []) {
  if (node.CONTENTS) for (const child of Object.values(node.CONTENTS)) methods(child, out);
  else out.push(node);
  return out;
}

function label(node) {
  const name = node.FULL_PATH.startsWith(PREFIX) ? node.FULL_PATH.slice(PREFIX.length) : node.FULL_PATH;
  const unit = node.UNIT ? ` (${node.UNIT[0]})` : "";
  return el("label", { title: node.DESCRIPTION ?? "" }, name + unit);
}

// -- sending ---------------------------------------------------------------------------------------------------

function send(path, args = []) {
  if (socket?.readyState !== WebSocket.OPEN) {
    showError(path, "not connected: the change was not sent", true);
    return;
  }
  socket.send(encode(path, args));
}

const pending = new Map();
let flushTimer = null;

function sendSoon(path, args) {   // for slider drags: the newest value per path, every SEND_EVERY_MS
  pending.set(path, args);
  flushTimer ??= setTimeout(() => {
    flushTimer = null;
    for (const [p, a] of pending) send(p, a);
    pending.clear();
  }, SEND_EVERY_MS);
}

function oscArgs(node, value) {
  if (node.TYPE === "T") return [[value ? "T" : "F"]];
  if (node.TYPE === "i") return [["i", Math.round(value)]];
  if (node.TYPE === "f") return [["f", value]];
  return [["s", String(value)]];
}

// -- controls, one builder per kind of node -------------------------------------------------------------------

function numberControl(node) {
  const { MIN, MAX } = node.RANGE[0];
  const box = el("input", { type: "text", inputmode: "decimal", class: "value", "data-value-of": node.FULL_PATH,
                            "aria-label": `${node.FULL_PATH} value` });
  const row = el("div", { class: "control number", "data-path": node.FULL_PATH }, label(node));
  let typing = false;
  box.addEventListener("input", () => { typing = true; });
  box.addEventListener("change", () => {   // Enter or leaving the box: sent as typed, the server clamps and says so
    typing = false;
    const value = Number(box.value.trim().replace(",", "."));
    if (box.value.trim() === "" || !Number.isFinite(value)) {
      showError(node.FULL_PATH, `${JSON.stringify(box.value)} is not a number`, true);
      return;
    }
    send(node.FULL_PATH, oscArgs(node, value));
  });

  if (MAX - MIN > SLIDER_MAX_SPAN) {        // the seed: a box and a random button
    const dice = el("button", { type: "button", class: "dice", title: "a new random value" }, "random");
    dice.addEventListener("click", () => {
      send(node.FULL_PATH, oscArgs(node, MIN + Math.floor(Math.random() * Math.min(MAX - MIN, 2 ** 31 - 1))));
    });
    row.append(el("div", { class: "inputs" }, box, dice));
    return { row, set(value) { if (!typing) box.value = format(value, node.TYPE); } };
  }

  const slider = el("input", { type: "range", min: MIN, max: MAX, step: niceStep(node), "data-path": node.FULL_PATH,
                               "aria-label": node.FULL_PATH });
  // While a finger holds the slider, values from the server (echoes of older moves, a knob elsewhere) are not
  // shown: the thumb would jump under the finger. After release the echo of the last move brings it in line.
  let dragging = false;
  slider.addEventListener("pointerdown", () => { dragging = true; });
  const release = () => { dragging = false; };
  window.addEventListener("pointerup", release);
  window.addEventListener("pointercancel", release);
  slider.addEventListener("input", () => {
    box.value = format(slider.value, node.TYPE);
    sendSoon(node.FULL_PATH, oscArgs(node, Number(slider.value)));
  });
  row.append(el("div", { class: "inputs" }, slider, box));
  return {
    row,
    set(value) {
      if (!dragging) slider.value = value;
      if (!typing) box.value = format(value, node.TYPE);
    },
  };
}

function choiceControl(node) {
  const select = el("select", { "data-path": node.FULL_PATH, "aria-label": node.FULL_PATH });
  const fill = (vals) => {
    const current = select.value;
    select.replaceChildren(...vals.map((v) => el("option", { value: v }, v === "" ? "(seed)" : v)));
    if (vals.includes(current)) select.value = current;
  };
  fill(node.RANGE[0].VALS);
  select.addEventListener("change", () => send(node.FULL_PATH, oscArgs(node, select.value)));
  const row = el("div", { class: "control choice", "data-path": node.FULL_PATH }, label(node), select);
  return {
    row,
    fill,
    set(value) {
      if (![...select.options].some((o) => o.value === value)) refreshChoices();  // a new model's names
      select.value = value;
    },
  };
}

function textControl(node) {
  const input = el("input", { type: "text", "data-path": node.FULL_PATH, "aria-label": node.FULL_PATH,
                              autocomplete: "off", spellcheck: "false" });
  const load = el("button", { type: "button" }, "Load");
  const submit = () => send(node.FULL_PATH, oscArgs(node, input.value.trim()));
  load.addEventListener("click", submit);
  input.addEventListener("keydown", (event) => { if (event.key === "Enter") submit(); });
  const row = el("div", { class: "control text", "data-path": node.FULL_PATH }, label(node),
                 el("div", { class: "inputs" }, input, load));
  return { row, set(value) { if (document.activeElement !== input) input.value = value; } };
}

function toggleControl(node) {
  const box = el("input", { type: "checkbox", "data-path": node.FULL_PATH, "aria-label": node.FULL_PATH });
  box.addEventListener("change", () => send(node.FULL_PATH, oscArgs(node, box.checked)));
  const row = el("div", { class: "control toggle", "data-path": node.FULL_PATH },
                 el("label", { title: node.DESCRIPTION ?? "" }, box, " ", label(node).textContent));
  return { row, set(value) { box.checked = Boolean(value); } };
}

function makeControl(node) {
  if ((node.TYPE === "f" || node.TYPE === "i") && node.RANGE?.[0]?.MIN !== undefined) return numberControl(node);
  if (node.TYPE === "s" && node.RANGE?.[0]?.VALS) return choiceControl(node);
  if (node.TYPE === "s") return textControl(node);
  if (node.TYPE === "T") return toggleControl(node);
  return null;
}

function build(root) {
  const sections = new Map();
  const container = document.getElementById("controls");
  container.replaceChildren();
  controls.clear();
  for (const node of methods(root)) {
    const group = node.TAGS?.[0] ?? "other";
    if (group === "command" || group === "audio") continue;   // the buttons and the picture, above
    const control = makeControl(node);
    if (!control) continue;
    if (!sections.has(group)) {
      const details = el("details", { class: "group", "data-group": group },
                         el("summary", {}, GROUP_TITLES[group] ?? group));
      details.open = OPEN_GROUPS.has(group);
      sections.set(group, details);
      container.append(details);
    }
    sections.get(group).append(control.row);
    controls.set(node.FULL_PATH, control);
    if (node.VALUE) control.set(node.VALUE[0]);
  }
  const seq = root.CONTENTS?.stylesynth?.CONTENTS?.audio?.CONTENTS?.seq?.VALUE?.[0];
  if (seq) newClip(seq);
  const model = controls.get(MODEL_PATH);
  if (model) document.getElementById("model").textContent = root.CONTENTS.stylesynth.CONTENTS.model.VALUE?.[0] ?? "";
}

async function fetchTree() {
  const response = await fetch("/", { headers: { Accept: "application/json" }, cache: "no-store" });
  if (!response.ok) throw new Error(`GET / answered ${response.status}`);
  return response.json();
}

async function refreshChoices() {   // after a model change: its prototypes and start points
  tree = await fetchTree();
  for (const node of methods(tree)) {
    const control = controls.get(node.FULL_PATH);
    if (control?.fill && node.RANGE?.[0]?.VALS) {
      control.fill(node.RANGE[0].VALS);
      if (node.VALUE) control.set(node.VALUE[0]);
    }
  }
}

// -- what the server says --------------------------------------------------------------------------------------

function showError(address, reason, local = false) {
  const list = document.getElementById("errors");
  const time = new Date().toLocaleTimeString();
  const item = el("div", { class: local ? "error local" : "error" },
                  el("time", {}, time), " ", el("code", {}, address || "(packet)"), " ", reason);
  list.prepend(item);
  while (list.childElementCount > MAX_ERRORS) list.lastElementChild.remove();
}

let shownSeq = 0;
let wantedSeq = 0;
let loadingPicture = false;

function newClip(seq) {
  // The picture is made on the server (~0.1 s): one request at a time, always for the newest clip, so a slider
  // storm costs a few pictures rather than one per clip.
  wantedSeq = Math.max(wantedSeq, seq);
  document.getElementById("clip").textContent = `clip ${wantedSeq}`;
  const player = document.getElementById("player");
  if (player.paused) player.src = `/clip/latest.wav?seq=${wantedSeq}`;
  if (loadingPicture || wantedSeq === shownSeq) return;
  loadingPicture = true;
  const img = document.getElementById("spectrogram");
  const target = wantedSeq;
  img.onload = img.onerror = () => {
    loadingPicture = false;
    shownSeq = target;
    img.alt = `spectrogram of clip ${target}`;
    if (wantedSeq > shownSeq) newClip(wantedSeq);
  };
  img.src = `/clip/latest.png?seq=${target}`;
}

function receive(data) {
  let message;
  try {
    message = decode(data);
  } catch (error) {
    showError("", `unreadable message from the server: ${error.message}`, true);
    return;
  }
  const { address, args } = message;
  if (address === "/error") {
    showError(args[0], args[1]);
    // A value refused or clamped without changing the state sends no echo: ask, so the control shows the truth.
    if (controls.has(args[0]) && args[0].startsWith(PREFIX)) send(PREFIX + "q/" + args[0].slice(PREFIX.length));
  }
  else if (address === SEQ_PATH) newClip(args[0]);
  else if (address === "/version.reply") document.body.dataset.ready = "1";   // everything before it is in effect
  else if (controls.has(address)) {
    controls.get(address).set(args[0]);
    if (address === MODEL_PATH) document.getElementById("model").textContent = args[0];
  }
}

// -- connection ------------------------------------------------------------------------------------------------

function setStatus(state, text) {
  const status = document.getElementById("status");
  status.dataset.state = state;
  status.textContent = text;
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/`);
  socket.binaryType = "arraybuffer";
  socket.addEventListener("open", () => {
    setStatus("open", "connected");
    for (const path of [...controls.keys(), SEQ_PATH, "/error"]) {
      socket.send(JSON.stringify({ COMMAND: "LISTEN", DATA: path }));
    }
    send("/stylesynth/dump");   // values changed between reading the tree and listening
    send("/version");           // its reply marks the page ready (frames are handled in order)
  });
  socket.addEventListener("message", (event) => { if (typeof event.data !== "string") receive(event.data); });
  socket.addEventListener("close", () => {
    delete document.body.dataset.ready;
    setStatus("closed", "disconnected: retrying…");
    setTimeout(connect, 1000);
  });
}

function wireButtons() {
  document.getElementById("trigger").addEventListener("click", () => send("/stylesynth/trigger", [["f", 1.0]]));
  document.getElementById("panic").addEventListener("click", () => send("/stylesynth/panic"));
  const player = document.getElementById("player");
  player.addEventListener("ended", () => {   // a clip that arrived during playback is next
    const newest = `/clip/latest.wav?seq=${wantedSeq}`;
    if (!player.src.endsWith(newest)) player.src = newest;
  });
}

async function main() {
  wireButtons();
  try {
    tree = await fetchTree();
  } catch (error) {
    setStatus("closed", `cannot read the OSCQuery tree: ${error.message}`);
    return;
  }
  build(tree);
  connect();
}

main();
