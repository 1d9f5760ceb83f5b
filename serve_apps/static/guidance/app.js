// Exercise guidance page: camera -> in-browser pose (@mediapipe/pose, served from the app) ->
// frames over a WebSocket -> one feedback line and a repetition counter.
// window.guidance is the page's API; the camera uses it, and so does the browser test, which
// feeds recorded keypoints instead of the camera.
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const token = new URLSearchParams(location.hash.slice(1)).get("token") || "";
  const authHeaders = token ? { Authorization: "Bearer " + token } : {};

  // Skeleton edges for 33 BlazePose landmarks and for 17 COCO keypoints.
  const EDGES_33 = [[11, 12], [11, 13], [13, 15], [12, 14], [14, 16], [11, 23], [12, 24], [23, 24],
    [23, 25], [25, 27], [24, 26], [26, 28], [27, 31], [28, 32], [0, 11], [0, 12]];
  const EDGES_17 = [[5, 6], [5, 7], [7, 9], [6, 8], [8, 10], [5, 11], [6, 12], [11, 12],
    [11, 13], [13, 15], [12, 14], [14, 16], [0, 5], [0, 6]];

  const ui = { state: null, reps: 0, feedbackTimer: null };
  const session = { id: null, ws: null, waiting: [], exercise: null, results: 0 };

  async function api(method, path, body) {
    const res = await fetch(path, {
      method, headers: { "Content-Type": "application/json", ...authHeaders },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const data = await res.json();
    if (!res.ok) throw new Error(data.detail || res.status);
    return data;
  }

  async function loadExercises() {
    const data = await api("GET", "/api/exercises");
    for (const sel of [$("exercise"), $("reselect-exercise")]) {
      sel.innerHTML = "";
      for (const ex of data.exercises) {
        const opt = document.createElement("option");
        opt.value = ex.id; opt.textContent = ex.name;
        sel.appendChild(opt);
      }
    }
    return data.exercises.map((e) => e.id);
  }

  function openStream(id) {
    return new Promise((resolve, reject) => {
      const proto = location.protocol === "https:" ? "wss://" : "ws://";
      const q = token ? "?token=" + encodeURIComponent(token) : "";
      const ws = new WebSocket(proto + location.host + "/api/session/" + id + "/stream" + q);
      ws.onopen = () => resolve(ws);
      ws.onerror = () => reject(new Error("stream failed"));
      ws.onmessage = (ev) => {
        const msg = JSON.parse(ev.data);
        const waiter = session.waiting.shift();
        if (!msg.error) show(msg);
        if (waiter) waiter(msg);
      };
      ws.onclose = () => { session.ws = null; };
    });
  }

  function show(result) {
    session.results += 1;
    if (result.reps !== ui.reps) { ui.reps = result.reps; $("reps").textContent = String(result.reps); }
    if (result.state !== ui.state) {
      ui.state = result.state;
      $("guidance").textContent = result.guidance || "\u00a0";
      $("uncertain").hidden = result.state !== "UNCERTAINTY";
      $("manual-confirm").hidden = result.state !== "VERIFYING";
    }
    if (result.feedback) {
      const line = $("feedback");
      line.textContent = result.feedback;
      line.classList.remove("faded");
      clearTimeout(ui.feedbackTimer);
      ui.feedbackTimer = setTimeout(() => line.classList.add("faded"), 4000);
    }
  }

  function draw(keypoints, width, height) {
    const canvas = $("skeleton");
    if (width && height && (canvas.width !== width || canvas.height !== height)) {
      canvas.width = width; canvas.height = height;
    }
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    const edges = keypoints.length === 33 ? EDGES_33 : EDGES_17;
    const visible = (p) => p.length < 3 || (keypoints.length === 17 ? p[2] : (p[3] ?? 1)) > 0.3;
    ctx.strokeStyle = "#3b82f6"; ctx.fillStyle = "#ffffff"; ctx.lineWidth = 4;
    for (const [a, b] of edges) {
      const p = keypoints[a], q = keypoints[b];
      if (!visible(p) || !visible(q)) continue;
      ctx.beginPath();
      ctx.moveTo(p[0] * canvas.width, p[1] * canvas.height);
      ctx.lineTo(q[0] * canvas.width, q[1] * canvas.height);
      ctx.stroke();
    }
    for (const p of keypoints) {
      if (!visible(p)) continue;
      ctx.beginPath(); ctx.arc(p[0] * canvas.width, p[1] * canvas.height, 4, 0, 2 * Math.PI); ctx.fill();
      ctx.stroke();
    }
  }

  // ---------------------------------------------------------------- the page's API
  async function start(exercise, opts = {}) {
    if (session.id) await end();
    const body = { exercise };
    if (opts.imageWidth && opts.imageHeight) { body.image_width = opts.imageWidth; body.image_height = opts.imageHeight; }
    const data = await api("POST", "/api/session/start", body);
    session.id = data.session_id; session.exercise = exercise; session.results = 0;
    ui.state = null; ui.reps = -1;
    show({ state: data.state, reps: 0, guidance: data.guidance, feedback: null });
    session.results = 0; // counts frame results only
    session.ws = await openStream(session.id);
    $("end").hidden = false; $("summary").hidden = true; $("placeholder").hidden = true;
    return data;
  }

  function feed(timestampMs, keypoints, size) {
    if (!session.id) return Promise.reject(new Error("no session"));
    draw(keypoints, size && size.width, size && size.height);
    const msg = JSON.stringify({ timestamp_ms: timestampMs, keypoints });
    if (session.ws && session.ws.readyState === WebSocket.OPEN) {
      return new Promise((resolve) => { session.waiting.push(resolve); session.ws.send(msg); });
    }
    return api("POST", "/api/session/" + session.id + "/frame", JSON.parse(msg)).then((r) => { show(r); return r; });
  }

  async function end() {
    if (!session.id) return null;
    const id = session.id;
    session.id = null;
    if (session.ws) session.ws.close();
    stopCamera();
    const data = await api("POST", "/api/session/" + id + "/end").catch(() => null);
    if (data) {
      $("summary").textContent = "Session complete: " + data.summary.reps + " repetitions.";
      $("summary").hidden = false;
    }
    $("end").hidden = true;
    return data;
  }

  async function confirm() {
    const data = await api("POST", "/api/session/" + session.id + "/confirm");
    ui.state = null; show({ ...data, feedback: null, guidance: data.guidance || null });
    return data;
  }

  async function reselect(exercise) {
    const data = await api("POST", "/api/session/" + session.id + "/reselect", { exercise });
    session.exercise = exercise; ui.state = null; ui.reps = -1;
    show({ ...data, feedback: null, guidance: data.guidance || null });
    return data;
  }

  function snapshot() {
    return { sessionId: session.id, state: ui.state, reps: Number($("reps").textContent),
      feedback: $("feedback").textContent.trim(), results: session.results,
      promptShown: $("uncertain").offsetParent !== null };
  }

  // ---------------------------------------------------------------- camera + in-browser pose
  let camera = null;
  async function startCamera() {
    if (typeof Pose === "undefined" || !navigator.mediaDevices) {
      $("guidance").textContent = "The camera is not available in this browser.";
      return;
    }
    const video = $("camera");
    const stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
    video.srcObject = stream; await video.play();
    const pose = new Pose({ locateFile: (file) => "/vendor/pose/" + file });
    pose.setOptions({ modelComplexity: 1, smoothLandmarks: false, minDetectionConfidence: 0.5, minTrackingConfidence: 0.5 });
    let busy = false;
    pose.onResults((res) => {
      busy = false;
      if (!res.poseLandmarks || !session.id) return;
      const kp = res.poseLandmarks.map((p) => [p.x, p.y, p.z, p.visibility ?? 1]);
      feed(performance.now(), kp, { width: video.videoWidth, height: video.videoHeight }).catch(() => {});
    });
    camera = { stream, running: true };
    const loop = async () => {
      if (!camera || !camera.running) return;
      if (!busy && video.readyState >= 2) { busy = true; await pose.send({ image: video }); }
      requestAnimationFrame(loop);
    };
    requestAnimationFrame(loop);
  }

  function stopCamera() {
    if (!camera) return;
    camera.running = false;
    camera.stream.getTracks().forEach((t) => t.stop());
    camera = null;
  }

  window.guidance = { start, feed, end, confirm, reselect, snapshot, loadExercises };

  $("start").addEventListener("click", async () => {
    const video = $("camera");
    await start($("exercise").value, { imageWidth: video.videoWidth || 640, imageHeight: video.videoHeight || 480 });
    startCamera().catch(() => { $("guidance").textContent = "Please allow the camera to begin."; });
  });
  $("end").addEventListener("click", () => end());
  $("confirm").addEventListener("click", () => confirm());
  $("manual-confirm").addEventListener("click", () => confirm());
  $("reselect").addEventListener("click", () => reselect($("reselect-exercise").value));
  window.guidanceReady = loadExercises();
})();
