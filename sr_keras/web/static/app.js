"use strict";
// The page: every chosen or dropped picture becomes a card that uploads it, follows its job (a long
// poll: the server answers when the status changes), then shows input and result to compare and download.
const $ = (sel, root = document) => root.querySelector(sel);
const modelSelect = $("#model"), strengthBox = $("#strength-box"), strength = $("#strength");
let info = null;  // GET api/models

function showMessage(text) {
  const box = $("#message");
  box.textContent = text;
  box.hidden = !text;
}

async function loadModels() {
  try {
    const response = await fetch("api/models");
    info = await response.json();
  } catch (e) {
    showMessage("Cannot reach the server: " + e.message);
    return;
  }
  for (const m of info.models) modelSelect.add(new Option(`${m.name} (x${m.scale ?? "?"})`, m.name));
  modelSelect.value = info.default;
  $("#limits").textContent = `Up to ${info.max_megapixels} megapixels a picture; one picture at a time, in turn.`;
  updateStrength();
}

// The slider blends the PSNR model (0) into its GAN fine-tuning (1): shown only when the server has both.
function updateStrength() {
  const pair = info && info.interpolation;
  strengthBox.hidden = !(pair && (modelSelect.value === pair.a || modelSelect.value === pair.b));
}
modelSelect.addEventListener("change", () => {
  const pair = info && info.interpolation;
  if (pair && modelSelect.value === pair.a) strength.value = 0;
  if (pair && modelSelect.value === pair.b) strength.value = 1;
  $("#strength-value").textContent = Number(strength.value).toFixed(2);
  updateStrength();
});
strength.addEventListener("input", () => { $("#strength-value").textContent = Number(strength.value).toFixed(2); });

$("#files").addEventListener("change", (e) => {
  const files = Array.from(e.target.files);
  e.target.value = "";  // choosing the same file again starts it again
  files.forEach(startJob);
});
const drop = $("#drop");
document.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
document.addEventListener("dragleave", (e) => { if (!e.relatedTarget) drop.classList.remove("over"); });
document.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  Array.from(e.dataTransfer.files).forEach(startJob);
});

function startJob(file) {
  showMessage("");
  const card = $("#job-template").content.firstElementChild.cloneNode(true);
  $("#jobs").prepend(card);
  const job = {card, file, id: null, status: null, done: false, upload: new AbortController()};
  $(".name", card).textContent = file.name;
  const inputUrl = URL.createObjectURL(file);
  const input = $(".input", card);
  input.addEventListener("error", () => { input.hidden = true; });  // not an image, or one the browser cannot show
  input.src = inputUrl;
  $(".c-before", card).src = inputUrl;
  $(".cancel", card).addEventListener("click", () => cancel(job));
  $(".mode", card).addEventListener("change", () => setMode(job));
  $(".zoom", card).addEventListener("change", () => setZoom(job));
  $(".split", card).addEventListener("input", (e) => $(".stack", card).style.setProperty("--split", e.target.value + "%"));
  $(".download", card).addEventListener("click", () => download(job));
  upload(job);
}

function fail(job, text) {
  job.done = true;
  const box = $(".error", job.card);
  box.textContent = text;
  box.hidden = false;
  $(".status", job.card).textContent = "failed";
  $(".cancel", job.card).hidden = true;
  $("progress", job.card).hidden = true;
  $(".view", job.card).hidden = true;
}

async function upload(job) {
  const {file, card} = job;
  if (info && file.size > info.max_upload_bytes) {
    return fail(job, `'${file.name}' is ${(file.size / 1e6).toFixed(1)} MB, over this server's upload limit of ` +
                     `${(info.max_upload_bytes / 1e6).toFixed(0)} MB`);
  }
  const params = new URLSearchParams({name: file.name});
  if (modelSelect.value) params.set("model", modelSelect.value);
  if (!strengthBox.hidden) params.set("strength", strength.value);
  $(".status", card).textContent = "uploading";
  let response, body;
  try {
    response = await fetch("api/jobs?" + params, {method: "POST", body: file, signal: job.upload.signal});
    body = await response.json();
  } catch (e) {
    return job.upload.signal.aborted ? render(job, {state: "cancelled"}) : fail(job, "Upload failed: " + e.message);
  }
  if (!response.ok) return fail(job, body.error || `the server answered ${response.status}`);
  job.id = body.id;
  follow(job, body);
}

async function follow(job, status) {
  for (;;) {
    render(job, status);
    if (["done", "error", "cancelled"].includes(status.state)) return;
    const query = new URLSearchParams({wait: 10, state: status.state, tiles: status.tiles});
    try {
      const response = await fetch(`api/jobs/${job.id}?${query}`);
      status = await response.json();
      if (!response.ok) return fail(job, status.error);
    } catch (e) {
      return fail(job, "Lost the server: " + e.message);
    }
  }
}

function render(job, status) {
  const card = job.card, progress = $("progress", card), text = $(".status", card);
  job.status = status;
  if (status.state === "queued") {
    text.textContent = status.ahead ? `queued: ${status.ahead} picture(s) ahead` : "queued";
  } else if (status.state === "running") {
    text.textContent = `upscaling: ${status.tiles} of ${status.total} tile(s)`;
    progress.value = status.tiles / Math.max(1, status.total);
  } else if (status.state === "cancelled") {
    job.done = true;
    text.textContent = "cancelled";
    $(".cancel", card).hidden = true;
    progress.hidden = true;
  } else if (status.state === "error") {
    fail(job, status.error);
  } else if (status.state === "done") {
    job.done = true;
    text.textContent = `${status.width}x${status.height} -> ${status.width * status.scale}x` +
                       `${status.height * status.scale} in ${status.seconds} s`;
    progress.value = 1;
    $(".cancel", card).hidden = true;
    const result = $(".result", card);
    result.addEventListener("load", () => { $(".tools", card).hidden = false; }, {once: true});
    result.addEventListener("error", () => resultProblem(job, result.src), {once: true});
    result.src = `api/jobs/${job.id}/result.png`;
    $(".c-after", card).src = result.src;
    result.hidden = false;
  }
}

// The server's reason (a result no longer kept), or the browser's (a picture too large to draw).
async function resultProblem(job, url) {
  let text = "The browser cannot show a picture this large: download it instead.";
  try {
    const response = await fetch(url);
    if (!response.ok) text = (await response.json()).error;
  } catch (e) {
    text = "Lost the server: " + e.message;
  }
  const box = $(".error", job.card);
  box.textContent = text;
  box.hidden = false;
  $(".tools", job.card).hidden = false;
}

async function cancel(job) {
  if (job.done) return;
  if (!job.id) return job.upload.abort();
  try {
    const response = await fetch(`api/jobs/${job.id}/cancel`, {method: "POST"});
    if (!response.ok) fail(job, (await response.json()).error);
  } catch (e) {
    fail(job, "Lost the server: " + e.message);
  }
}

function setMode(job) {
  const slider = $(".mode", job.card).value === "slider";
  const view = $(".view", job.card);
  view.classList.toggle("side", !slider);
  view.classList.toggle("slider", slider);
  $(".compare", job.card).hidden = !slider;
}

// Zoom is in result pixels per screen pixel; zoomed pictures are drawn pixelated, so pixels stay pixels.
function setZoom(job) {
  const zoom = $(".zoom", job.card).value, view = $(".view", job.card);
  view.classList.toggle("zoomed", zoom !== "fit");
  if (zoom !== "fit") view.style.setProperty("--zoom-width", `${$(".result", job.card).naturalWidth * Number(zoom)}px`);
}

async function download(job) {
  const format = $(".format", job.card).value, status = job.status;
  const box = $(".error", job.card);
  box.hidden = true;
  try {
    const response = await fetch(`api/jobs/${job.id}/result.${format}`);
    if (!response.ok) {
      box.textContent = (await response.json()).error;
      box.hidden = false;
      return;
    }
    const warning = response.headers.get("X-Warning");
    if (warning) {
      box.textContent = "Downloaded without some metadata: " + decodeURIComponent(warning);
      box.hidden = false;
    }
    const link = document.createElement("a");
    link.href = URL.createObjectURL(await response.blob());
    link.download = `${job.file.name.replace(/\.[^.]*$/, "") || "picture"}_x${status.scale}.${format}`;
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 60000);
  } catch (e) {
    box.textContent = "Download failed: " + e.message;
    box.hidden = false;
  }
}

loadModels();
