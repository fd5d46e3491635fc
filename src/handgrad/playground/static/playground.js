// handgrad playground: the page is a view of the server's Session.
//
// Every control sends one message over the WebSocket (/ws); every frame the server streams
// replaces what the page shows. The page computes no maths of its own: it keeps what the last
// frame said (plus the loss history and the points, which frames carry only when they change)
// in `view`, and draws it.
(() => {
  "use strict";

  const FEATURES = ["x1", "x2", "x1^2", "x2^2", "x1x2", "sin_x1", "sin_x2"];
  const FEATURE_LABELS = {
    x1: "x₁", x2: "x₂", "x1^2": "x₁²", "x2^2": "x₂²", x1x2: "x₁x₂", sin_x1: "sin πx₁", sin_x2: "sin πx₂",
  };
  const TWO_CLASS_SETS = new Set(["circle", "xor", "moons"]);
  const MAX_LAYERS = 6;
  const MAX_NEURONS = 8;
  // class 0 orange and class 1 blue as in TF Playground; then four more for up to 6 classes
  const CLASS_COLORS = ["#f59322", "#0877bd", "#2ca25f", "#8e5ccf", "#d6404e", "#17a3b8"];
  const NEG = [245, 147, 34];
  const POS = [8, 119, 189];
  const HISTORY_MAX = 4000; // loss points kept for the curve (thinned by half beyond this)

  const $ = (id) => document.getElementById(id);
  // text changes cost a layout: write only what differs
  function setText(id, text) {
    const el = $(id);
    if (el.textContent !== String(text)) el.textContent = text;
  }
  const dpr = () => window.devicePixelRatio || 1;

  // ---------------------------------------------------------------- the one state
  const view = {
    frame: null, // the last frame, as the server sent it
    points: null, // {train, test}: the last points sent
    history: [], // [[epoch, train_loss, test_loss], ...] since the last history_reset
    connected: false,
    hover: null, // what the mouse is over in the network drawing
    decoded: null, // the last frame's base64 maps, decoded once
  };
  const stats = { framesReceived: 0, framesDrawn: 0, fps: 0 };
  window.playgroundStats = stats;

  // ---------------------------------------------------------------- colours
  const hexRgb = (h) => [1, 3, 5].map((i) => parseInt(h.slice(i, i + 2), 16));
  const CLASS_RGB = CLASS_COLORS.map(hexRgb);

  // diverging palette of the neuron maps: 0 -> -1 (orange), 128 -> 0 (white), 255 -> +1 (blue)
  const DIVERGING = new Uint8ClampedArray(256 * 3);
  for (let v = 0; v < 256; v++) {
    const t = v / 127.5 - 1;
    const c = t < 0 ? NEG : POS;
    const a = Math.min(1, Math.abs(t));
    for (let j = 0; j < 3; j++) DIVERGING[v * 3 + j] = 255 + (c[j] - 255) * a;
  }

  function b64bytes(text) {
    const s = atob(text || "");
    const out = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
    return out;
  }

  // one small canvas per map size, reused for every heat map
  const scratch = new Map();
  function mapCanvas(size) {
    let entry = scratch.get(size);
    if (!entry) {
      const c = document.createElement("canvas");
      c.width = c.height = size;
      const ctx = c.getContext("2d");
      entry = { canvas: c, ctx, image: ctx.createImageData(size, size) };
      scratch.set(size, entry);
    }
    return entry;
  }

  function divergingImage(bytes, size) {
    const m = mapCanvas(size);
    const px = m.image.data;
    for (let i = 0; i < size * size; i++) {
      const v = bytes[i] * 3;
      px[i * 4] = DIVERGING[v];
      px[i * 4 + 1] = DIVERGING[v + 1];
      px[i * 4 + 2] = DIVERGING[v + 2];
      px[i * 4 + 3] = 255;
    }
    m.ctx.putImageData(m.image, 0, 0);
    return m.canvas;
  }

  // every neuron map of a frame stacked in one canvas (g wide, g * maps tall)
  let atlasEntry = null;
  function mapAtlas(maps, g) {
    const count = maps.reduce((n, layer) => n + layer.length, 0);
    if (!atlasEntry || atlasEntry.g !== g || atlasEntry.count < count) {
      const c = document.createElement("canvas");
      c.width = g;
      c.height = g * Math.max(1, count);
      const ctx = c.getContext("2d");
      atlasEntry = { g, count, canvas: c, ctx, image: ctx.createImageData(g, g * Math.max(1, count)) };
    }
    const px = atlasEntry.image.data;
    const slots = [];
    let k = 0;
    for (const layer of maps) {
      const row = [];
      for (const bytes of layer) {
        const base = k * g * g;
        for (let i = 0; i < g * g; i++) {
          const v = bytes[i] * 3;
          const o = (base + i) * 4;
          px[o] = DIVERGING[v];
          px[o + 1] = DIVERGING[v + 1];
          px[o + 2] = DIVERGING[v + 2];
          px[o + 3] = 255;
        }
        row.push(k++);
      }
      slots.push(row);
    }
    atlasEntry.ctx.putImageData(atlasEntry.image, 0, 0);
    return { canvas: atlasEntry.canvas, slots };
  }

  function decisionImage(label, confidence, size, k) {
    const m = mapCanvas(size);
    const px = m.image.data;
    for (let i = 0; i < size * size; i++) {
      const c = CLASS_RGB[Math.min(label[i], CLASS_RGB.length - 1)] || CLASS_RGB[0];
      const t = 0.06 + 0.64 * (confidence[i] / 255); // pale where the network is unsure
      px[i * 4] = 255 + (c[0] - 255) * t;
      px[i * 4 + 1] = 255 + (c[1] - 255) * t;
      px[i * 4 + 2] = 255 + (c[2] - 255) * t;
      px[i * 4 + 3] = 255;
    }
    m.ctx.putImageData(m.image, 0, 0);
    return m.canvas;
  }

  // ---------------------------------------------------------------- formatting
  function fmtLoss(x) {
    return typeof x === "number" && Number.isFinite(x) ? x.toFixed(3) : "–";
  }
  function fmtPct(x) {
    return typeof x === "number" && Number.isFinite(x) ? `${(100 * x).toFixed(1)}%` : "–";
  }
  function fmtEpoch(n) {
    if (n > 999999) return n.toLocaleString("en-US");
    const s = String(n).padStart(6, "0");
    return `${s.slice(0, 3)},${s.slice(3)}`;
  }
  function fmtWeight(w) {
    return (w >= 0 ? "+" : "") + w.toFixed(3);
  }
  // a text field's value: a number when it reads as one, else the text (the server quotes it)
  function fieldValue(el) {
    const text = el.value.trim();
    const n = Number(text);
    return text !== "" && Number.isFinite(n) ? n : text;
  }

  // ---------------------------------------------------------------- the socket
  let socket = null;
  let retry = 500;

  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    socket = new WebSocket(`${scheme}://${location.host}/ws`);
    socket.onopen = () => {
      retry = 500;
      view.connected = true;
      renderStatus();
      socket.send(JSON.stringify({ type: "hello" }));
    };
    socket.onmessage = (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch (e) {
        showError("the server sent a message that is not JSON");
        return;
      }
      if (message.type === "frame") applyFrame(message);
      else if (message.type === "error") {
        showError(message.message);
        // a refused change: the controls show the session's values again (not the one being typed in)
        renderedSettings = "";
        renderControls(currentSettings());
      }
    };
    socket.onclose = () => {
      view.connected = false;
      renderStatus();
      setTimeout(connect, retry);
      retry = Math.min(5000, retry * 2);
    };
  }

  function send(message) {
    if (!socket || socket.readyState !== WebSocket.OPEN) {
      showError("not connected to the server (retrying); is `handgrad playground` running?");
      return;
    }
    if (message.type !== "hello") hideError("request");
    socket.send(JSON.stringify(message));
  }
  const set = (settings) => send({ type: "set", settings });

  // ---------------------------------------------------------------- frames
  function applyFrame(f) {
    stats.framesReceived++;
    if (f.history_reset) view.history = [];
    if (Array.isArray(f.history)) {
      for (const h of f.history) view.history.push(h);
      if (view.history.length > HISTORY_MAX) view.history = view.history.filter((_, i) => i % 2 === 0 || i === view.history.length - 1);
    }
    if (f.points) view.points = f.points;
    view.frame = f;
    view.decoded = null;
    view.fresh = true;
    if (f.error !== lastFrameError) {
      // a divergence: shown once (the banner can be dismissed); gone with the reset
      if (f.error) showError(f.error, "frame");
      else hideError("frame");
      lastFrameError = f.error;
    }
    renderControls(f.settings);
    renderNumbers(f);
    scheduleDraw();
  }

  function decoded() {
    const f = view.frame;
    if (!view.decoded && f) {
      view.decoded = {
        label: f.grid ? b64bytes(f.grid.label) : null,
        confidence: f.grid ? b64bytes(f.grid.confidence) : null,
        maps: f.neurons ? f.neurons.maps.map((layer) => layer.map(b64bytes)) : [],
      };
    }
    return view.decoded;
  }

  // ---------------------------------------------------------------- error banner
  let errorSource = null;
  let lastFrameError = null;
  function showError(text, source = "request") {
    $("error-text").textContent = text;
    $("error").hidden = false;
    errorSource = source;
  }
  function hideError(source) {
    if (errorSource === source) {
      $("error").hidden = true;
      errorSource = null;
    }
  }

  // ---------------------------------------------------------------- controls from the frame
  let renderedSettings = "";

  function setValue(id, value, force = false) {
    const el = $(id);
    if (!force && document.activeElement === el) return; // the user is typing there
    const text = String(value);
    if (el.value !== text) el.value = text;
  }

  function renderControls(s, force = false) {
    if (!s) return;
    const key = JSON.stringify(s);
    if (key === renderedSettings && !force) return;
    renderedSettings = key;

    setValue("dataset", s.dataset, force);
    setValue("classes", s.classes, force);
    $("classes").disabled = TWO_CLASS_SETS.has(s.dataset);
    setValue("noise", s.noise, force);
    $("noise-value").textContent = Number(s.noise).toFixed(2);
    setValue("n-points", s.n_points, force);
    setValue("train-ratio", s.train_ratio, force);
    $("train-ratio-value").textContent = `${Math.round(100 * s.train_ratio)}%`;
    setValue("seed", s.seed, force);
    for (const box of document.querySelectorAll("#features input")) {
      box.checked = s.features.includes(box.dataset.feature);
    }
    renderLayers(s.hidden);
    setValue("activation", s.activation, force);
    setValue("optimizer", s.optimizer, force);
    setValue("lr", s.lr, force);
    setValue("batch-size", s.batch_size, force);
    setValue("regularization", s.regularization, force);
    setValue("reg-rate", s.reg_rate, force);
    $("reg-rate").disabled = s.regularization === "none";
    setValue("speed", s.speed, force);
    $("speed-value").textContent = s.speed;
  }

  function renderLayers(hidden) {
    $("layer-count").textContent = hidden.length;
    $("add-layer").disabled = hidden.length >= MAX_LAYERS;
    $("remove-layer").disabled = hidden.length === 0;
    const list = $("layers");
    list.replaceChildren(
      ...hidden.map((n, i) => {
        const li = document.createElement("li");
        li.className = "layer-row";
        const name = document.createElement("span");
        name.textContent = `Layer ${i + 1}`;
        const stepper = document.createElement("span");
        stepper.className = "stepper";
        const dots = document.createElement("span");
        dots.className = "dots";
        for (let j = 0; j < n; j++) dots.appendChild(document.createElement("i"));
        const minus = button(`remove-neuron-${i}`, "−", `remove a neuron from layer ${i + 1}`, n <= 1);
        const count = document.createElement("output");
        count.id = `neurons-${i}`;
        count.textContent = n;
        const plus = button(`add-neuron-${i}`, "+", `add a neuron to layer ${i + 1}`, n >= MAX_NEURONS);
        minus.dataset.layer = plus.dataset.layer = i;
        minus.dataset.delta = -1;
        plus.dataset.delta = 1;
        stepper.append(dots, minus, count, plus);
        li.append(name, stepper);
        return li;
      }),
    );
  }

  function button(id, text, label, disabled) {
    const b = document.createElement("button");
    b.type = "button";
    b.id = id;
    b.textContent = text;
    b.setAttribute("aria-label", label);
    b.disabled = disabled;
    return b;
  }

  function renderNumbers(f) {
    setText("epoch", fmtEpoch(f.epoch));
    setText("train-loss", fmtLoss(f.train_loss));
    setText("test-loss", fmtLoss(f.test_loss));
    setText("accuracy", `accuracy · train ${fmtPct(f.train_accuracy)} · test ${fmtPct(f.test_accuracy)}`);
    const play = $("play");
    if (play.classList.contains("playing") !== !!f.playing) {
      play.classList.toggle("playing", !!f.playing);
      play.setAttribute("aria-label", f.playing ? "pause" : "play");
    }
    const layers = f.layers || [];
    let params = 0;
    for (let i = 1; i < layers.length; i++) params += layers[i] * (layers[i - 1] + 1);
    setText("network-summary", `${layers.join(" → ")} · ${f.settings.activation} · ${params} parameters`);
    renderLegend(f.grid ? f.grid.classes : 2);
  }

  let legendClasses = 0;
  function renderLegend(k) {
    if (k === legendClasses) return;
    legendClasses = k;
    const items = [];
    for (let c = 0; c < k; c++) {
      const s = document.createElement("span");
      const d = document.createElement("span");
      d.className = "dot";
      d.style.background = CLASS_COLORS[c];
      s.append(d, `class ${c}`);
      items.push(s);
    }
    const train = document.createElement("span");
    const dot = document.createElement("span");
    dot.className = "dot plain";
    train.append(dot, "train (filled)");
    const test = document.createElement("span");
    const ring = document.createElement("span");
    ring.className = "ring";
    test.append(ring, "test (outlined)");
    $("legend").replaceChildren(...items, train, test);
  }

  function renderStatus() {
    const s = $("status");
    s.textContent = view.connected ? "live" : "offline, retrying";
    s.classList.toggle("live", view.connected);
    s.classList.toggle("offline", !view.connected);
  }

  // ---------------------------------------------------------------- controls to messages
  function currentSettings() {
    return view.frame ? view.frame.settings : null;
  }

  function wireControls() {
    $("play").addEventListener("click", togglePlay);
    $("step").addEventListener("click", () => send({ type: "step" }));
    $("reset").addEventListener("click", () => send({ type: "reset" }));
    $("error-close").addEventListener("click", () => hideError(errorSource));

    $("dataset").addEventListener("change", (e) => {
      const changes = { dataset: e.target.value };
      const s = currentSettings();
      if (TWO_CLASS_SETS.has(e.target.value) && s && s.classes !== 2) changes.classes = 2;
      set(changes);
    });
    $("classes").addEventListener("change", (e) => set({ classes: Number(e.target.value) }));
    $("noise").addEventListener("input", (e) => ($("noise-value").textContent = Number(e.target.value).toFixed(2)));
    $("noise").addEventListener("change", (e) => set({ noise: Number(e.target.value) }));
    $("train-ratio").addEventListener("input", (e) => ($("train-ratio-value").textContent = `${Math.round(100 * e.target.value)}%`));
    $("train-ratio").addEventListener("change", (e) => set({ train_ratio: Number(e.target.value) }));
    for (const [id, key] of [["n-points", "n_points"], ["seed", "seed"], ["lr", "lr"], ["batch-size", "batch_size"], ["reg-rate", "reg_rate"]]) {
      const el = $(id);
      el.addEventListener("change", () => set({ [key]: fieldValue(el) }));
      el.addEventListener("keydown", (e) => {
        if (e.key === "Escape") renderControls(currentSettings(), true);
      });
      // leaving a field shows the session's value again (a refused value is in the banner)
      el.addEventListener("blur", () => setTimeout(() => renderControls(currentSettings(), true), 0));
    }
    $("regenerate").addEventListener("click", () => {
      const s = currentSettings();
      if (s) set({ seed: (s.seed + 1) % 2147483648 });
    });
    $("features").addEventListener("change", () => {
      const chosen = FEATURES.filter((name) => document.querySelector(`#features input[data-feature="${name}"]`).checked);
      set({ features: chosen });
    });
    $("add-layer").addEventListener("click", () => {
      const s = currentSettings();
      if (s) set({ hidden: [...s.hidden, s.hidden.length ? s.hidden[s.hidden.length - 1] : 4] });
    });
    $("remove-layer").addEventListener("click", () => {
      const s = currentSettings();
      if (s) set({ hidden: s.hidden.slice(0, -1) });
    });
    $("layers").addEventListener("click", (e) => {
      const b = e.target.closest("button");
      const s = currentSettings();
      if (!b || !s) return;
      const hidden = s.hidden.slice();
      hidden[Number(b.dataset.layer)] += Number(b.dataset.delta);
      set({ hidden });
    });
    for (const [id, key] of [["activation", "activation"], ["optimizer", "optimizer"], ["regularization", "regularization"]]) {
      $(id).addEventListener("change", (e) => set({ [key]: e.target.value }));
    }
    let speedTimer = null;
    $("speed").addEventListener("input", (e) => {
      $("speed-value").textContent = e.target.value;
      clearTimeout(speedTimer);
      speedTimer = setTimeout(() => set({ speed: Number(e.target.value) }), 60);
    });

    document.addEventListener("keydown", (e) => {
      const t = e.target;
      if (t && (t.tagName === "INPUT" || t.tagName === "SELECT" || t.tagName === "TEXTAREA" || t.tagName === "BUTTON")) return;
      if (e.key === " ") {
        e.preventDefault();
        togglePlay();
      } else if (e.key === ".") {
        send({ type: "step" });
      }
    });

    const net = $("network");
    net.addEventListener("mousemove", (e) => {
      const r = net.getBoundingClientRect();
      view.mouse = { x: e.clientX - r.left, y: e.clientY - r.top };
      updateHover();
      drawNow(false);
    });
    net.addEventListener("mouseleave", () => {
      view.mouse = null;
      updateHover();
      drawNow(false);
    });
    window.addEventListener("resize", () => drawNow(false));
  }

  function togglePlay() {
    const f = view.frame;
    send({ type: f && f.playing ? "pause" : "play" });
  }

  // ---------------------------------------------------------------- drawing
  let drawScheduled = false;
  function scheduleDraw() {
    if (drawScheduled) return;
    drawScheduled = true;
    requestAnimationFrame(() => {
      drawScheduled = false;
      drawNow(true);
    });
  }

  const drawTimes = [];
  function drawNow(countIt) {
    if (!view.frame) return;
    const t0 = performance.now();
    drawNetwork();
    const t1 = performance.now();
    drawDecision();
    const t2 = performance.now();
    drawLoss();
    const t3 = performance.now();
    stats.drawMs = { network: t1 - t0, decision: t2 - t1, loss: t3 - t2 };
    if (countIt && view.fresh) {
      view.fresh = false;
      stats.framesDrawn++;
      drawTimes.push(performance.now());
      updateFps();
    }
  }

  function updateFps() {
    const now = performance.now();
    while (drawTimes.length && drawTimes[0] < now - 1000) drawTimes.shift();
    stats.fps = drawTimes.length;
    setText("fps", `${stats.fps} fps`);
  }
  setInterval(updateFps, 500);

  function fitCanvas(canvas) {
    const ratio = dpr();
    const w = Math.max(1, Math.round(canvas.clientWidth * ratio));
    const h = Math.max(1, Math.round(canvas.clientHeight * ratio));
    if (canvas.width !== w || canvas.height !== h) {
      canvas.width = w;
      canvas.height = h;
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0); // draw in CSS pixels
    return { ctx, w: canvas.clientWidth, h: canvas.clientHeight };
  }

  // -- the network: one column per layer (features, hidden layers, output)
  function networkLayout(f, w, h) {
    const layers = f.layers || [];
    const cols = layers.length;
    const maxN = Math.max(1, ...layers);
    const top = 34;
    const bottom = 10;
    const left = 58;
    const right = 58;
    const size = Math.max(16, Math.min(60, (h - top - bottom) / (maxN * 1.25), (w - left - right) / (cols * 1.8)));
    const gap = Math.min(size * 1.35, (h - top - bottom) / maxN);
    const span = w - left - right - size;
    const columns = layers.map((n, c) => {
      const x = left + size / 2 + (cols > 1 ? (c * span) / (cols - 1) : span / 2);
      const y0 = top + (h - top - bottom - n * gap) / 2 + gap / 2;
      return Array.from({ length: n }, (_, i) => ({ x, y: y0 + i * gap }));
    });
    return { columns, size };
  }

  function edgePath(ctx, a, b, size) {
    const x0 = a.x + size / 2;
    const x1 = b.x - size / 2;
    const mx = (x0 + x1) / 2;
    ctx.moveTo(x0, a.y);
    ctx.bezierCurveTo(mx, a.y, mx, b.y, x1, b.y);
  }

  function columnName(c, cols) {
    if (c === 0) return "input";
    if (c === cols - 1) return "output";
    return `layer ${c}`;
  }

  function nodeName(f, c, i) {
    const cols = f.layers.length;
    if (c === 0) return FEATURE_LABELS[f.feature_names[i]] || f.feature_names[i];
    if (c === cols - 1) return f.layers[c] === 1 ? "output (class 1 vs 0)" : `output, class ${i}`;
    return `neuron ${c}.${i + 1}`;
  }

  function drawNetwork() {
    const f = view.frame;
    const { ctx, w, h } = fitCanvas($("network"));
    ctx.clearRect(0, 0, w, h);
    if (!f.layers) return;
    const layout = networkLayout(f, w, h);
    view.layout = layout;
    const { columns, size } = layout;
    const cols = columns.length;
    const hover = view.hover;

    // edges, behind the nodes; weights[c] is (out, in): edge in -> out is weights[c][out][in].
    // Edges of one sign and strength go in one path: a few strokes instead of hundreds.
    ctx.lineCap = "round";
    const buckets = new Map();
    let hot = null;
    for (let c = 0; c + 1 < cols; c++) {
      const W = (f.weights || [])[c] || [];
      for (let o = 0; o < columns[c + 1].length; o++) {
        for (let i = 0; i < columns[c].length; i++) {
          const wv = (W[o] && W[o][i]) || 0;
          const edge = [columns[c][i], columns[c + 1][o], wv];
          if (hover && hover.kind === "edge" && hover.c === c && hover.o === o && hover.i === i) hot = edge;
          const key = (wv >= 0 ? 1 : -1) * (1 + Math.min(15, Math.round(Math.abs(wv) * 4)));
          if (!buckets.has(key)) buckets.set(key, []);
          buckets.get(key).push(edge);
        }
      }
    }
    for (const [key, edges] of buckets) {
      const mag = (Math.abs(key) - 1) / 4; // |w|, quantised to 0.25
      const rgb = key > 0 ? POS : NEG;
      ctx.strokeStyle = `rgba(${rgb[0]},${rgb[1]},${rgb[2]},${0.18 + 0.62 * Math.min(1, mag / 2)})`;
      ctx.lineWidth = 0.5 + Math.min(4, mag) * 1.4;
      ctx.beginPath();
      for (const [a, b] of edges) edgePath(ctx, a, b, size);
      ctx.stroke();
    }
    if (hot) {
      const rgb = hot[2] >= 0 ? POS : NEG;
      ctx.strokeStyle = `rgb(${rgb[0]},${rgb[1]},${rgb[2]})`;
      ctx.lineWidth = 2.5 + Math.min(4, Math.abs(hot[2])) * 1.4;
      ctx.beginPath();
      edgePath(ctx, hot[0], hot[1], size);
      ctx.stroke();
    }

    // nodes: each its heat map over the plane, all painted into one atlas first
    const maps = decoded().maps;
    const g = f.neurons ? f.neurons.size : 0;
    const atlas = g ? mapAtlas(maps, g) : null;
    ctx.imageSmoothingEnabled = true;
    ctx.font = "12px system-ui, sans-serif";
    ctx.textBaseline = "middle";
    for (let c = 0; c < cols; c++) {
      ctx.fillStyle = "#66717f";
      ctx.textAlign = "center";
      ctx.fillText(columnName(c, cols), columns[c].length ? columns[c][0].x : 0, 14);
      for (let i = 0; i < columns[c].length; i++) {
        const p = columns[c][i];
        const x = p.x - size / 2;
        const y = p.y - size / 2;
        const slot = atlas && atlas.slots[c] ? atlas.slots[c][i] : undefined;
        if (slot !== undefined) ctx.drawImage(atlas.canvas, 0, slot * g, g, g, x, y, size, size);
        else {
          ctx.fillStyle = "#f1f3f6";
          ctx.fillRect(x, y, size, size);
        }
        const hot = hover && hover.kind === "node" && hover.c === c && hover.i === i;
        ctx.lineWidth = hot ? 2.5 : 1;
        ctx.strokeStyle = hot ? "#15293f" : "rgba(29,39,51,0.35)";
        ctx.strokeRect(x + 0.5, y + 0.5, size - 1, size - 1);
        // the bias: a small square at the lower left, coloured like a weight
        if (c > 0 && f.biases && f.biases[c - 1]) {
          const b = f.biases[c - 1][i];
          const rgb = b >= 0 ? POS : NEG;
          ctx.fillStyle = `rgba(${rgb[0]},${rgb[1]},${rgb[2]},${0.25 + 0.75 * Math.min(1, Math.abs(b))})`;
          ctx.fillRect(x - 6, y + size - 6, 5, 5);
        }
        if (c === 0) {
          ctx.fillStyle = "#1d2733";
          ctx.textAlign = "right";
          ctx.fillText(nodeName(f, 0, i), x - 8, p.y);
        } else if (c === cols - 1 && columns[c].length > 1) {
          ctx.fillStyle = CLASS_COLORS[i % CLASS_COLORS.length];
          ctx.beginPath();
          ctx.arc(x + size + 10, p.y, 4, 0, 2 * Math.PI);
          ctx.fill();
        }
      }
    }
    updateTooltip();
  }

  // -- hover: which node or edge is under the mouse
  function updateHover() {
    const f = view.frame;
    const L = view.layout;
    const m = view.mouse;
    view.hover = null;
    if (!f || !L || !m) return updateTooltip();
    const { columns, size } = L;
    for (let c = 0; c < columns.length; c++) {
      for (let i = 0; i < columns[c].length; i++) {
        const p = columns[c][i];
        if (Math.abs(m.x - p.x) <= size / 2 && Math.abs(m.y - p.y) <= size / 2) {
          view.hover = { kind: "node", c, i };
          return updateTooltip();
        }
      }
    }
    let best = 6; // pixels
    for (let c = 0; c + 1 < columns.length; c++) {
      const a0 = columns[c][0];
      const b0 = columns[c + 1][0];
      if (!a0 || !b0 || m.x < a0.x + size / 2 || m.x > b0.x - size / 2) continue;
      for (let o = 0; o < columns[c + 1].length; o++) {
        for (let i = 0; i < columns[c].length; i++) {
          const d = distanceToEdge(m, columns[c][i], columns[c + 1][o], size);
          if (d < best) {
            best = d;
            view.hover = { kind: "edge", c, o, i };
          }
        }
      }
    }
    updateTooltip();
  }

  function distanceToEdge(m, a, b, size) {
    const x0 = a.x + size / 2;
    const x1 = b.x - size / 2;
    const mx = (x0 + x1) / 2;
    let best = Infinity;
    let px = x0;
    let py = a.y;
    for (let s = 1; s <= 20; s++) {
      const t = s / 20;
      const u = 1 - t;
      // cubic Bezier (x0,a.y) (mx,a.y) (mx,b.y) (x1,b.y)
      const x = u * u * u * x0 + 3 * u * u * t * mx + 3 * u * t * t * mx + t * t * t * x1;
      const y = u * u * u * a.y + 3 * u * u * t * a.y + 3 * u * t * t * b.y + t * t * t * b.y;
      best = Math.min(best, segmentDistance(m.x, m.y, px, py, x, y));
      px = x;
      py = y;
    }
    return best;
  }

  function segmentDistance(x, y, ax, ay, bx, by) {
    const dx = bx - ax;
    const dy = by - ay;
    const len = dx * dx + dy * dy;
    const t = len ? Math.max(0, Math.min(1, ((x - ax) * dx + (y - ay) * dy) / len)) : 0;
    return Math.hypot(x - ax - t * dx, y - ay - t * dy);
  }

  function updateTooltip() {
    const tip = $("tooltip");
    const f = view.frame;
    const hv = view.hover;
    const m = view.mouse;
    if (!hv || !f || !m) {
      tip.hidden = true;
      return;
    }
    let text;
    if (hv.kind === "node") {
      text = nodeName(f, hv.c, hv.i);
      if (hv.c > 0 && f.biases && f.biases[hv.c - 1]) text += ` · bias ${fmtWeight(f.biases[hv.c - 1][hv.i])}`;
      text += " (its map is on the right)";
    } else {
      const w = f.weights[hv.c][hv.o][hv.i];
      // the Sequential holds Linear, activation, Linear, ...: layer c's Linear is module 2c
      text = `weight ${fmtWeight(w)} · ${nodeName(f, hv.c, hv.i)} → ${nodeName(f, hv.c + 1, hv.o)} (${2 * hv.c}.weight[${hv.o}][${hv.i}])`;
    }
    tip.textContent = text;
    tip.hidden = false;
    const wrap = tip.parentElement.getBoundingClientRect();
    const left = m.x + 14 + tip.offsetWidth > wrap.width ? m.x - 14 - tip.offsetWidth : m.x + 14;
    tip.style.left = `${Math.max(0, left)}px`;
    tip.style.top = `${m.y + 12}px`;
  }

  // -- the decision regions (or, while a neuron is hovered, that neuron's map) with the points
  function drawDecision() {
    const f = view.frame;
    const { ctx, w, h } = fitCanvas($("decision"));
    ctx.clearRect(0, 0, w, h);
    if (!f.grid) return;
    const pad = { l: 26, r: 6, t: 6, b: 22 };
    const plot = { x: pad.l, y: pad.t, w: w - pad.l - pad.r, h: h - pad.t - pad.b };
    const [xmin, xmax, ymin, ymax] = f.grid.extent;
    const d = decoded();
    const hv = view.hover;
    let image;
    let caption = null;
    if (hv && hv.kind === "node" && d.maps[hv.c] && d.maps[hv.c][hv.i]) {
      image = divergingImage(d.maps[hv.c][hv.i], f.neurons.size);
      caption = nodeName(f, hv.c, hv.i);
    } else {
      image = decisionImage(d.label, d.confidence, f.grid.size, f.grid.classes);
    }
    ctx.imageSmoothingEnabled = true;
    ctx.imageSmoothingQuality = "high";
    ctx.drawImage(image, plot.x, plot.y, plot.w, plot.h);

    const sx = (x) => plot.x + ((x - xmin) / (xmax - xmin)) * plot.w;
    const sy = (y) => plot.y + ((ymax - y) / (ymax - ymin)) * plot.h;
    const pts = view.points;
    if (pts) {
      const r = Math.max(2.2, Math.min(4, 520 / Math.sqrt((pts.train.length + pts.test.length) || 1) / 4));
      // one path per class: train points filled, test points outlined
      const k = Math.max(2, f.grid.classes);
      for (const [list, filled] of [[pts.train, true], [pts.test, false]]) {
        for (let c = 0; c < k; c++) {
          ctx.beginPath();
          for (const [x, y, label] of list) {
            if (label !== c) continue;
            const px = sx(x);
            const py = sy(y);
            ctx.moveTo(px + r, py);
            ctx.arc(px, py, r, 0, 2 * Math.PI);
          }
          const color = CLASS_COLORS[c % CLASS_COLORS.length];
          ctx.fillStyle = filled ? color : "rgba(255,255,255,0.85)";
          ctx.fill();
          ctx.lineWidth = filled ? 1 : 1.6;
          ctx.strokeStyle = filled ? "rgba(255,255,255,0.9)" : color;
          ctx.stroke();
        }
      }
    }

    // frame and ticks
    ctx.strokeStyle = "rgba(29,39,51,0.25)";
    ctx.lineWidth = 1;
    ctx.strokeRect(plot.x + 0.5, plot.y + 0.5, plot.w - 1, plot.h - 1);
    ctx.fillStyle = "#66717f";
    ctx.font = "11px system-ui, sans-serif";
    const ticks = (lo, hi) => [lo, (lo + hi) / 2, hi];
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    for (const x of ticks(xmin, xmax)) ctx.fillText(tick(x), Math.min(Math.max(sx(x), plot.x + 8), plot.x + plot.w - 8), plot.y + plot.h + 5);
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (const y of ticks(ymin, ymax)) ctx.fillText(tick(y), plot.x - 5, Math.min(Math.max(sy(y), plot.y + 6), plot.y + plot.h - 6));
    if (caption) {
      ctx.font = "12px system-ui, sans-serif";
      ctx.textAlign = "left";
      ctx.textBaseline = "top";
      const text = `showing ${caption}`;
      ctx.fillStyle = "rgba(255,255,255,0.85)";
      ctx.fillRect(plot.x + 6, plot.y + 6, ctx.measureText(text).width + 12, 20);
      ctx.fillStyle = "#1d2733";
      ctx.fillText(text, plot.x + 12, plot.y + 10);
    }
  }
  const tick = (v) => (Math.abs(v) < 1e-9 ? "0" : Number(v.toPrecision(2)).toString());

  // -- the loss curve: train (grey) and test (dark) over the epochs
  function drawLoss() {
    const { ctx, w, h } = fitCanvas($("loss-curve"));
    ctx.clearRect(0, 0, w, h);
    const hist = view.history;
    const pad = { l: 40, r: 8, t: 8, b: 18 };
    const pw = w - pad.l - pad.r;
    const ph = h - pad.t - pad.b;
    ctx.strokeStyle = "#dde2e9";
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(pad.l, pad.t);
    ctx.lineTo(pad.l, pad.t + ph);
    ctx.lineTo(pad.l + pw, pad.t + ph);
    ctx.stroke();
    ctx.fillStyle = "#66717f";
    ctx.font = "11px system-ui, sans-serif";
    if (hist.length < 1) {
      ctx.textAlign = "center";
      ctx.textBaseline = "middle";
      ctx.fillText("press play", pad.l + pw / 2, pad.t + ph / 2);
      return;
    }
    let top = 0;
    for (const [, a, b] of hist) {
      if (Number.isFinite(a)) top = Math.max(top, a);
      if (Number.isFinite(b)) top = Math.max(top, b);
    }
    top = top > 0 ? top * 1.05 : 1;
    const e0 = hist[0][0];
    const e1 = Math.max(hist[hist.length - 1][0], e0 + 1);
    const X = (e) => pad.l + ((e - e0) / (e1 - e0)) * pw;
    const Y = (v) => pad.t + ph - (Math.min(v, top) / top) * ph;
    const stride = Math.max(1, Math.floor(hist.length / pw));
    for (const [col, color, width] of [[1, "#9aa6b4", 1.5], [2, "#1d2733", 1.8]]) {
      ctx.strokeStyle = color;
      ctx.lineWidth = width;
      ctx.beginPath();
      let started = false;
      for (let j = 0; j < hist.length; j += stride) {
        const v = hist[j][col];
        if (!Number.isFinite(v)) continue;
        if (started) ctx.lineTo(X(hist[j][0]), Y(v));
        else ctx.moveTo(X(hist[j][0]), Y(v));
        started = true;
      }
      const last = hist[hist.length - 1];
      if (started && Number.isFinite(last[col])) ctx.lineTo(X(last[0]), Y(last[col]));
      ctx.stroke();
    }
    ctx.fillStyle = "#66717f";
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    ctx.fillText(top.toPrecision(2), pad.l - 5, pad.t + 4);
    ctx.fillText("0", pad.l - 5, pad.t + ph);
    ctx.textBaseline = "top";
    ctx.textAlign = "left";
    ctx.fillText(`epoch ${e0}`, pad.l, pad.t + ph + 4);
    ctx.textAlign = "right";
    ctx.fillText(`${hist[hist.length - 1][0]}`, pad.l + pw, pad.t + ph + 4);
  }

  // ---------------------------------------------------------------- start
  window.playground = { view, send, stats }; // for the browser test and for what comes next
  wireControls();
  renderStatus();
  connect();
})();
