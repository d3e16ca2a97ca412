// Camera mode of the live page: the phone's camera is a barcode scanner.
//
// Frames are decoded by the browser's BarcodeDetector where it exists, else sent to the
// gateway (POST /api/decode). Each distinct code becomes a scan with its own id, kept
// in localStorage until the gateway's answer names that id: a scan made while the
// connection is down waits and is sent when it returns, and one whose answer was lost
// is sent again and acknowledged as a duplicate, never counted twice. Data is shown
// with textContent only, never as markup.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const body = document.body;
  const sessionId = body.dataset.session || "";
  const params = new URLSearchParams(window.location.search);
  const QUEUE_KEY = "tagsweep-scan-queue";
  const DEVICE_KEY = "tagsweep-device";
  const OPERATOR_KEY = "tagsweep-operator";
  const REPEAT_MS = 3000; // a code must leave the picture this long to be scanned again
  const BATCH = 50;
  const HISTORY = 12;

  function randomHex(bytes) {
    const a = new Uint8Array(bytes);
    window.crypto.getRandomValues(a); // works on plain http too, unlike randomUUID
    return Array.from(a, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  let device = params.get("device") || localStorage.getItem(DEVICE_KEY) || "phone-" + randomHex(4);
  localStorage.setItem(DEVICE_KEY, device);
  let operator = params.get("operator") || localStorage.getItem(OPERATOR_KEY) || body.dataset.operator || "";
  if (operator) localStorage.setItem(OPERATOR_KEY, operator);
  $("device-id").textContent = device;
  $("operator-name").value = operator;
  $("operator-name").addEventListener("change", (ev) => {
    operator = ev.target.value.trim();
    localStorage.setItem(OPERATOR_KEY, operator);
    flush();
  });

  let queue = [];
  try {
    queue = JSON.parse(localStorage.getItem(QUEUE_KEY) || "[]");
    if (!Array.isArray(queue)) queue = [];
  } catch (e) {
    queue = [];
  }
  const made = []; // ids of scans this page made (read by tests and the status line)
  const answers = {}; // id -> status
  let counted = 0;

  function save() {
    localStorage.setItem(QUEUE_KEY, JSON.stringify(queue));
    $("n-queued").textContent = String(queue.length);
  }

  function setConnection(state, text) {
    const el = $("connection");
    el.className = "connection " + state;
    el.textContent = text;
  }

  function say(text) {
    $("status").textContent = text;
  }

  let flashTimer = null;
  function flash(kind) {
    const viewer = $("viewer");
    viewer.className = "viewer flash-" + kind;
    clearTimeout(flashTimer);
    flashTimer = setTimeout(() => (viewer.className = "viewer"), 600);
    if (navigator.vibrate) {
      if (kind === "counted") navigator.vibrate(60);
      else if (kind === "location") navigator.vibrate([40, 60, 40]);
      else if (kind === "rejected") navigator.vibrate(250);
    }
  }

  function remember(result) {
    const list = $("ticked");
    const li = document.createElement("li");
    li.className = result.status;
    const what = document.createElement("span");
    what.className = "what";
    what.textContent = result.value || result.id;
    const detail = document.createElement("span");
    detail.className = "detail";
    const asset = result.asset;
    let text = result.status;
    if (result.status === "counted") {
      text = asset ? [asset.model, "registered at " + asset.location].filter(Boolean).join(" · ")
                   : "not in the register";
      if (result.location) text += " · here: " + result.location;
    } else if (result.status === "location") {
      text = "location set";
    } else if (result.reason) {
      text = result.status + ": " + result.reason;
    }
    detail.textContent = text;
    li.appendChild(what);
    li.appendChild(detail);
    list.insertBefore(li, list.firstChild);
    while (list.children.length > HISTORY) list.removeChild(list.lastChild);
  }

  // -- sending -------------------------------------------------------------------------
  // A half-open connection (the phone walked out of Wi-Fi range) would leave a request
  // hanging for minutes: give up after a while and try again.
  const TIMEOUT_MS = 8000;
  function post(url, type, payload) {
    const control = new AbortController();
    const timer = setTimeout(() => control.abort(), TIMEOUT_MS);
    return fetch(url, {
      method: "POST",
      headers: { "Content-Type": type },
      credentials: "same-origin",
      body: payload,
      signal: control.signal,
    }).finally(() => clearTimeout(timer));
  }

  let sending = false;
  async function flush() {
    if (sending || queue.length === 0) return;
    if (!operator) {
      say("Type your name as operator: scans wait until then.");
      return;
    }
    sending = true;
    const batch = queue.slice(0, BATCH);
    try {
      const resp = await post(
        "/api/scans",
        "application/json",
        JSON.stringify({ device, operator, session_id: sessionId || null, scans: batch }),
      );
      if (!resp.ok) {
        let message = "HTTP " + resp.status;
        try {
          message = (await resp.json()).error || message;
        } catch (e) { /* not JSON */ }
        setConnection("offline", "refused");
        say("The gateway refused the scans: " + message);
        return;
      }
      const answer = await resp.json();
      const done = new Set();
      let held = 0;
      for (const r of answer.results) {
        if (r.status === "held") {
          held += 1;
          continue;
        }
        done.add(r.id);
        answers[r.id] = r.status;
        if (r.status === "counted") counted += 1;
        remember(r);
        flash(r.status === "unrecognised" ? "rejected" : r.status);
      }
      queue = queue.filter((s) => !done.has(s.id));
      save();
      $("n-counted").textContent = String(counted);
      if (answer.location) $("here").textContent = answer.location;
      setConnection("live", "online");
      if (held) say(held + " scan(s) wait: no count session is open.");
      else if (queue.length === 0) say("All scans sent.");
    } catch (e) {
      setConnection("offline", "offline");
      say("Offline: " + queue.length + " scan(s) kept on this phone, sent when the connection returns.");
    } finally {
      sending = false;
    }
    if (queue.length && !sending) setTimeout(flush, 0);
  }
  window.addEventListener("online", flush);
  setInterval(flush, 1000);

  function seen(code) {
    const now = Date.now();
    const last = recent.get(code.text);
    recent.set(code.text, now);
    if (last !== undefined && now - last < REPEAT_MS) return;
    const scan = {
      id: randomHex(12),
      text: code.text,
      format: code.format || "",
      aim: code.aim || "",
      ts_us: now * 1000,
    };
    queue.push(scan);
    made.push(scan.id);
    save();
    flash("pending");
    say("Scanned " + code.text);
    flush();
  }
  const recent = new Map();

  // -- the camera ----------------------------------------------------------------------
  const video = $("video");
  const canvas = document.createElement("canvas");
  let detector = null;
  let busy = false;
  let running = false;

  async function tick() {
    if (!running || busy || video.readyState < 2 || !video.videoWidth) return;
    busy = true;
    try {
      if (detector) {
        const codes = await detector.detect(video);
        for (const c of codes) seen({ text: c.rawValue, format: c.format });
      } else {
        const scale = Math.min(1, 1280 / video.videoWidth);
        canvas.width = Math.round(video.videoWidth * scale);
        canvas.height = Math.round(video.videoHeight * scale);
        canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
        const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.85));
        if (!blob) return;
        const resp = await post("/api/decode", "image/jpeg", blob);
        if (resp.ok) {
          for (const c of (await resp.json()).codes) seen(c);
        }
      }
    } catch (e) {
      // decoding on the gateway needs the connection; scans already made stay queued
    } finally {
      busy = false;
    }
  }

  async function start() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      say("This browser gives no camera here: open the page over https (see `tagsweep web cert`).");
      return;
    }
    try {
      const stream = await navigator.mediaDevices.getUserMedia({
        video: { facingMode: "environment", width: { ideal: 1280 }, height: { ideal: 720 } },
        audio: false,
      });
      video.srcObject = stream;
      await video.play();
    } catch (e) {
      say("No camera: " + e.message);
      return;
    }
    if (params.get("decoder") !== "server" && "BarcodeDetector" in window) {
      try {
        const wanted = ["qr_code", "code_128", "data_matrix", "ean_13", "ean_8", "code_39", "upc_a", "upc_e"];
        const formats = (await window.BarcodeDetector.getSupportedFormats()).filter((f) => wanted.includes(f));
        if (formats.length) detector = new window.BarcodeDetector({ formats });
      } catch (e) {
        detector = null;
      }
    }
    $("decoder").textContent = detector ? "(decoded on this phone)" : "(decoded on the gateway)";
    running = true;
    $("start").hidden = true;
    say("Point the camera at a label.");
  }
  $("start").addEventListener("click", start);
  setInterval(tick, 150);

  // -- the session's totals ------------------------------------------------------------
  if (body.dataset.events) {
    const source = new EventSource(body.dataset.events);
    source.addEventListener("snapshot", (ev) => {
      const snap = JSON.parse(ev.data);
      $("seen-total").textContent = String(snap.totals.seen);
      $("expected-total").textContent = String(snap.totals.expected);
    });
  }

  save();
  flush();
  window.tagsweepScan = { made, answers, queue: () => queue.slice(), device: () => device };
})();
