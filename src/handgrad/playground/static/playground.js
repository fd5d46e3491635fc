// handgrad playground: the page is a view of the server's Session.
//
// Every control sends one message over the WebSocket (/ws); every frame the server streams
// replaces what the page shows. The page computes no maths of its own: it keeps what the last
// frame said (plus the loss history and the points, which frames carry only when they change)
// and the last answers to "explain", "gradcheck" and "reproduce" in `view`, and draws them.
// The settings live in the session; the address bar shows them (the frame's `query`), and a
// link with a query sends it in `hello`, so a link is a configuration.
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
  const GPOS = [192, 48, 107]; // dL/dw > 0 (the step lowers the weight)
  const GNEG = [47, 158, 110]; // dL/dw < 0 (the step raises it)
  const MAX_CLASSES = 6;
  const MAX_CSV_BYTES = 2 * 1024 * 1024; // the server's limit on a CSV upload
  const PICK_PX = 12; // a click this close to a point hits it (eraser, explain)
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
    downloads: null, // {weights, points, torch_state, torch_py}: URLs of the session's files
    explain: null, // the last "explain" reply: one step, every number of it
    gradcheck: null, // the last "gradcheck" reply
    reproduce: null, // the last "reproduce" reply
    // what is the page's own (not the session's): the tool on the plane, the class it adds,
    // the tab shown below, the row of an explained batch shown, what is being waited for
    ui: { tool: "add", drawClass: 0, tab: "explain", explainRow: 0, waiting: null },
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
    if (typeof w !== "number") return "–";
    return (w >= 0 ? "+" : "") + w.toFixed(3);
  }
  // a gradient: 3 significant digits, signed
  function fmtGrad(g) {
    if (typeof g !== "number" || !Number.isFinite(g)) return "–";
    if (g === 0) return "0";
    const a = Math.abs(g);
    const text = a >= 1e-3 && a < 1e4 ? String(Number(g.toPrecision(3))) : g.toExponential(2);
    return (g > 0 ? "+" : "") + text;
  }
  // a number of the explained step: 5 significant digits (a student checks 4), plain ASCII
  function fmtNum(v) {
    if (typeof v !== "number" || !Number.isFinite(v)) return "–";
    if (v === 0) return "0";
    const a = Math.abs(v);
    return a >= 1e-4 && a < 1e5 ? String(Number(v.toPrecision(5))) : v.toExponential(4);
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
      // a link's settings (the query) go to the session; refused, it keeps the defaults and
      // the server says why (the banner), and the next frame's query replaces the bad one
      const query = location.search.replace(/^\?/, "");
      socket.send(JSON.stringify(query ? { type: "hello", query } : { type: "hello" }));
    };
    socket.onmessage = (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch (e) {
        showError("the server sent a message that is not JSON");
        return;
      }
      receive(message);
    };
    socket.onclose = () => {
      view.connected = false;
      renderStatus();
      setTimeout(connect, retry);
      retry = Math.min(5000, retry * 2);
    };
  }

  // one message from the server
  function receive(message) {
    if (message.type === "frame") applyFrame(message);
    else if (message.type === "explain") applyExplain(message);
    else if (message.type === "gradcheck") applyGradcheck(message);
    else if (message.type === "reproduce") applyReproduce(message);
    else if (message.type === "error") {
      showError(message.message);
      setWaiting(null);
      // a refused change: the controls show the session's values again (not the one being typed in)
      renderedSettings = "";
      renderControls(currentSettings());
    }
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
    if (f.downloads) view.downloads = f.downloads;
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
    renderDrawClasses(f.settings);
    renderMonitors(f);
    renderNanOrigin(f);
    renderDownloads(f);
    renderAddress(f);
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
    // your own points: no noise or number of points to choose
    $("noise").disabled = $("n-points").disabled = s.dataset === "custom";
    const gradients = s.view === "gradients";
    $("view-weights").setAttribute("aria-checked", String(!gradients));
    $("view-gradients").setAttribute("aria-checked", String(gradients));
    $("network-hint").hidden = gradients;
    $("gradients-hint").hidden = !gradients;
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
    wireIssue12();

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
      } else if (e.key === "e") {
        explainStep();
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
    // Weights view: by the weight (|w| quantised to 0.25, wider up to |w| = 4). Gradients view:
    // by dL/dw of the last step relative to the largest |dL/dw| of the network (16 steps).
    const grads = gradientView(f);
    const values = grads ? grads.weights : f.weights || [];
    const scale = grads ? 4 / Math.max(1e-30, largest(values)) : 1;
    const [posRgb, negRgb] = grads ? [GPOS, GNEG] : [POS, NEG];
    ctx.lineCap = "round";
    const buckets = new Map();
    let hot = null;
    for (let c = 0; c + 1 < cols; c++) {
      const W = values[c] || [];
      for (let o = 0; o < columns[c + 1].length; o++) {
        for (let i = 0; i < columns[c].length; i++) {
          const wv = ((W[o] && W[o][i]) || 0) * scale;
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
      const rgb = key > 0 ? posRgb : negRgb;
      ctx.strokeStyle = `rgba(${rgb[0]},${rgb[1]},${rgb[2]},${0.18 + 0.62 * Math.min(1, mag / 2)})`;
      ctx.lineWidth = 0.5 + Math.min(4, mag) * 1.4;
      ctx.beginPath();
      for (const [a, b] of edges) edgePath(ctx, a, b, size);
      ctx.stroke();
    }
    if (hot) {
      const rgb = hot[2] >= 0 ? posRgb : negRgb;
      ctx.strokeStyle = `rgb(${rgb[0]},${rgb[1]},${rgb[2]})`;
      ctx.lineWidth = 2.5 + Math.min(4, Math.abs(hot[2])) * 1.4;
      ctx.beginPath();
      edgePath(ctx, hot[0], hot[1], size);
      ctx.stroke();
    }
    const deltaScale = grads ? 1 / Math.max(1e-30, largest(grads.delta)) : 0;
    const bad = f.nan_origin && typeof f.nan_origin.column === "number" ? f.nan_origin.column : null;

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
        if (c > 0 && f.biases && f.biases[c - 1] && !grads) {
          const b = f.biases[c - 1][i];
          const rgb = b >= 0 ? POS : NEG;
          ctx.fillStyle = `rgba(${rgb[0]},${rgb[1]},${rgb[2]},${0.25 + 0.75 * Math.min(1, Math.abs(b))})`;
          ctx.fillRect(x - 6, y + size - 6, 5, 5);
        }
        // gradients view: a bar under the neuron, as long as its |δ| (summed over the batch)
        // relative to the largest of the network, coloured by the sign
        if (c > 0 && grads && grads.delta[c - 1]) {
          const d = grads.delta[c - 1][i];
          if (typeof d === "number") {
            const rgb = d >= 0 ? GPOS : GNEG;
            ctx.fillStyle = `rgb(${rgb[0]},${rgb[1]},${rgb[2]})`;
            ctx.fillRect(x, y + size + 2, Math.max(1, size * Math.min(1, Math.abs(d) * deltaScale)), 4);
          }
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
      if (c === bad && columns[c].length) {
        // where NaN/inf appeared first: a red frame around the column
        const first = columns[c][0];
        const last = columns[c][columns[c].length - 1];
        ctx.strokeStyle = "#d9402f";
        ctx.lineWidth = 2;
        ctx.setLineDash([5, 3]);
        ctx.strokeRect(first.x - size / 2 - 7, first.y - size / 2 - 7, size + 14, last.y - first.y + size + 14);
        ctx.setLineDash([]);
        ctx.fillStyle = "#d9402f";
        ctx.textAlign = "center";
        ctx.fillText(`${f.nan_origin.value} first here`, first.x, last.y + size / 2 + 18);
      }
    }
    if (f.settings.view === "gradients" && !grads) {
      ctx.fillStyle = "#66717f";
      ctx.textAlign = "center";
      ctx.fillText("no step since the reset: press play or step to see the gradients", w / 2, h - 8);
    }
    updateTooltip();
  }

  // the gradients of the last step when the gradients view is on and there are some
  function gradientView(f) {
    return f.settings && f.settings.view === "gradients" && f.gradients ? f.gradients : null;
  }

  // the largest |x| of nested lists (null for not finite: skipped)
  function largest(nested) {
    let m = 0;
    const walk = (v) => {
      if (Array.isArray(v)) for (const x of v) walk(x);
      else if (typeof v === "number") m = Math.max(m, Math.abs(v));
    };
    walk(nested);
    return m;
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
    const grads = gradientView(f);
    if (hv.kind === "node" && grads && hv.c > 0) {
      const pick = (lists) => (lists && lists[hv.c - 1] ? lists[hv.c - 1][hv.i] : null);
      const d = pick(grads.delta);
      const da = pick(grads.delta_abs);
      const gb = pick(grads.biases);
      text =
        typeof d === "number"
          ? `${nodeName(f, hv.c, hv.i)} · δ = dL/dz ${fmtGrad(d)} (summed over the batch of ${grads.batch}; Σ|δ| ${fmtGrad(da)}) · dL/db ${fmtGrad(gb)}`
          : `${nodeName(f, hv.c, hv.i)} · dL/db ${fmtGrad(gb)} · δ: after the next step (the view was off during the last one)`;
    } else if (hv.kind === "node") {
      text = nodeName(f, hv.c, hv.i);
      if (hv.c > 0 && f.biases && f.biases[hv.c - 1]) text += ` · bias ${fmtWeight(f.biases[hv.c - 1][hv.i])}`;
      text += " (its map is on the right)";
    } else {
      const w = f.weights[hv.c][hv.o][hv.i];
      // the Sequential holds Linear, activation, Linear, ...: layer c's Linear is module 2c
      const where = `${nodeName(f, hv.c, hv.i)} → ${nodeName(f, hv.c + 1, hv.o)} (${2 * hv.c}.weight[${hv.o}][${hv.i}])`;
      text = grads
        ? `dL/dw ${fmtGrad(((grads.weights[hv.c] || [])[hv.o] || [])[hv.i])} · weight ${fmtWeight(w)} · ${where}`
        : `weight ${fmtWeight(w)} · ${where}`;
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
    view.plot = { ...plot, extent: f.grid.extent }; // for the clicks on the plane
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
      // the training points of the step explained below (while paused)
      const e = view.explain;
      if (e && !f.playing && view.ui.tab === "explain") {
        ctx.strokeStyle = "#15293f";
        ctx.lineWidth = 2;
        ctx.beginPath();
        for (const idx of e.indices || []) {
          const q = pts.train[idx];
          if (!q) continue;
          ctx.moveTo(sx(q[0]) + r + 4, sy(q[1]));
          ctx.arc(sx(q[0]), sy(q[1]), r + 4, 0, 2 * Math.PI);
        }
        ctx.stroke();
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

  // ================================================================ your data, the backward pass, a way out
  // (issue 12). Everything below either sends a message or draws a reply; the replies are
  // kept in `view` (explain, gradcheck, reproduce) next to the last frame.

  function wireIssue12() {
    // -- the weights / gradients switch: a setting of the session (so it is in the link too)
    $("view-weights").addEventListener("click", () => set({ view: "weights" }));
    $("view-gradients").addEventListener("click", () => set({ view: "gradients" }));

    // -- drawing on the plane
    $("draw-classes").addEventListener("click", (e) => {
      const b = e.target.closest("button");
      if (!b) return;
      view.ui.drawClass = Number(b.dataset.class);
      setTool("add");
      renderDrawClasses(currentSettings());
    });
    $("tool-erase").addEventListener("click", () => setTool(view.ui.tool === "erase" ? "add" : "erase"));
    $("tool-pick").addEventListener("click", () => setTool(view.ui.tool === "pick" ? "add" : "pick"));
    $("clear-points").addEventListener("click", () => send({ type: "clear_points" }));
    $("decision").addEventListener("click", planeClick);

    // -- CSV in and out
    $("upload-csv").addEventListener("click", () => $("csv-file").click());
    $("csv-file").addEventListener("change", uploadCsv);

    // -- the inspector
    for (const tab of ["explain", "gradcheck", "reproduce"]) {
      $(`tab-${tab}`).addEventListener("click", () => showTab(tab));
    }
    $("explain-step").addEventListener("click", () => explainStep());
    $("explain-point").addEventListener("keydown", (e) => {
      if (e.key === "Enter") explainStep();
    });
    $("explain-row").addEventListener("change", (e) => {
      view.ui.explainRow = Number(e.target.value);
      renderExplain();
    });
    $("gradcheck").addEventListener("click", () => {
      showTab("gradcheck");
      setWaiting("gradcheck");
      send({ type: "gradcheck" });
    });
    $("reproduce").addEventListener("click", () => {
      showTab("reproduce");
      setWaiting("reproduce");
      send({ type: "reproduce" });
    });
    $("copy-command").addEventListener("click", copyCommand);
  }

  function setTool(tool) {
    view.ui.tool = tool;
    $("tool-erase").setAttribute("aria-pressed", String(tool === "erase"));
    $("tool-pick").setAttribute("aria-pressed", String(tool === "pick"));
    $("decision").classList.toggle("erase", tool === "erase");
    const hints = {
      add: "Click: add a point of the chosen class · shift-click: remove",
      erase: "Click: remove the nearest point · pick a colour to draw again",
      pick: "Click a training point (filled): one step on it, explained below",
    };
    setText("draw-hint", hints[tool]);
  }

  // the class swatches: one per class in use, plus the next one (a click adds that class)
  let drawClassesKey = "";
  function renderDrawClasses(s) {
    if (!s) return;
    const f = view.frame;
    const names = (f && f.class_names) || [];
    const k = s.classes;
    if (view.ui.drawClass > Math.min(k, MAX_CLASSES - 1)) view.ui.drawClass = 0;
    const key = `${k}|${names.join(",")}|${view.ui.drawClass}`;
    if (key === drawClassesKey) return;
    drawClassesKey = key;
    const buttons = [];
    for (let c = 0; c < Math.min(MAX_CLASSES, k + 1); c++) {
      const b = document.createElement("button");
      b.type = "button";
      b.id = `draw-class-${c}`;
      b.dataset.class = c;
      b.setAttribute("role", "radio");
      b.setAttribute("aria-checked", String(c === view.ui.drawClass));
      b.style.background = CLASS_COLORS[c];
      const name = names[c] !== undefined && String(names[c]) !== String(c) ? ` ('${names[c]}')` : "";
      b.title = c < k ? `draw class ${c}${name}` : `draw class ${c}: a new class`;
      b.setAttribute("aria-label", b.title);
      if (c >= k) b.classList.add("unused");
      buttons.push(b);
    }
    $("draw-classes").replaceChildren(...buttons);
  }

  // a click on the plane: add a point, remove one, or pick one to explain
  function planeClick(e) {
    const f = view.frame;
    const P = view.plot;
    if (!f || !P) return;
    const r = $("decision").getBoundingClientRect();
    const px = e.clientX - r.left;
    const py = e.clientY - r.top;
    if (px < P.x || px > P.x + P.w || py < P.y || py > P.y + P.h) return;
    const [xmin, xmax, ymin, ymax] = P.extent;
    const perPx = (xmax - xmin) / P.w; // data units per CSS pixel
    // 3 decimals, as the frames show the points: the page shows what the server holds
    const x1 = Number((xmin + (px - P.x) * perPx).toFixed(3));
    const x2 = Number((ymax - (py - P.y) * ((ymax - ymin) / P.h)).toFixed(3));
    if (e.shiftKey || view.ui.tool === "erase") {
      send({ type: "remove_point", x1, x2, radius: PICK_PX * perPx });
    } else if (view.ui.tool === "pick") {
      const idx = nearestTrainPoint(px, py, P);
      if (idx === null) {
        showError("no training point there: click on a filled point to explain a step on it");
        return;
      }
      $("explain-point").value = String(idx);
      explainStep(idx);
    } else {
      const s = f.settings;
      const label = view.ui.drawClass;
      if (label >= s.classes) {
        // a new class: the session first needs room for it (a change of classes resets)
        set(s.dataset === "custom" ? { classes: label + 1 } : { dataset: "custom", classes: label + 1 });
      }
      send({ type: "add_point", x1, x2, label });
    }
  }

  function nearestTrainPoint(px, py, P) {
    const pts = view.points;
    if (!pts) return null;
    const [xmin, xmax, ymin, ymax] = P.extent;
    let best = null;
    let bestD = PICK_PX;
    pts.train.forEach(([x, y], i) => {
      const d = Math.hypot(P.x + ((x - xmin) / (xmax - xmin)) * P.w - px, P.y + ((ymax - y) / (ymax - ymin)) * P.h - py);
      if (d < bestD) {
        bestD = d;
        best = i;
      }
    });
    return best;
  }

  function uploadCsv(e) {
    const input = e.target;
    const file = input.files && input.files[0];
    if (!file) return;
    if (file.size > MAX_CSV_BYTES) {
      // the server's own limit (and message); a larger file would not fit in one socket message
      showError(`${file.name}: ${file.size} bytes; at most 2 MiB`);
      input.value = "";
      return;
    }
    const reader = new FileReader();
    reader.onload = () => {
      // the bytes as they are (the server says when they are not UTF-8), in base64
      const bytes = new Uint8Array(reader.result);
      let text = "";
      for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
      send({ type: "load_csv", base64: btoa(text), name: file.name });
      input.value = ""; // the same file again is a new change
    };
    reader.onerror = () => showError(`${file.name}: could not be read`);
    reader.readAsArrayBuffer(file);
  }

  // ---------------------------------------------------------------- frame parts

  // the address shows the session's settings (the defaults left out): a link is a configuration
  function renderAddress(f) {
    if (typeof f.query !== "string") return;
    const want = f.query ? `?${f.query}` : "";
    if (location.search !== want) history.replaceState(null, "", `${location.pathname}${want}${location.hash}`);
  }

  function renderDownloads() {
    const d = view.downloads || {};
    const links = [
      ["download-csv", d.points, "no points to download"],
      ["download-npz", d.weights, "not available"],
      ["download-pt", d.torch_state, "needs PyTorch on the server (pip install torch)"],
      ["download-py", d.torch_py, "needs PyTorch on the server (pip install torch)"],
    ];
    for (const [id, url, why] of links) {
      const a = $(id);
      if (a.dataset.title === undefined) a.dataset.title = a.title;
      if (url) {
        a.title = a.dataset.title;
        if (a.getAttribute("href") !== url) a.setAttribute("href", url);
        a.classList.remove("disabled");
        a.removeAttribute("aria-disabled");
      } else if (a.hasAttribute("href") || !a.classList.contains("disabled")) {
        a.removeAttribute("href");
        a.classList.add("disabled");
        a.setAttribute("aria-disabled", "true");
        a.title = why;
      }
    }
  }

  // the monitors table: one row per Linear (hidden layers, then the output)
  let monitorRows = -1;
  function renderMonitors(f) {
    const m = f.monitors;
    const body = $("monitors").tBodies[0];
    const layers = f.layers || [];
    const rows = Math.max(0, layers.length - 1);
    if (rows !== monitorRows) {
      monitorRows = rows;
      const trs = [];
      for (let l = 0; l < rows; l++) {
        const tr = document.createElement("tr");
        for (let j = 0; j < 6; j++) tr.appendChild(document.createElement("td"));
        trs.push(tr);
      }
      body.replaceChildren(...trs);
    }
    const pct = (x) => (typeof x === "number" ? `${(100 * x).toFixed(0)}%` : "–");
    const ratio = (x) => (typeof x === "number" ? (x === 0 ? "0" : x.toExponential(1)) : "–");
    for (let l = 0; l < rows; l++) {
      const out = l === rows - 1;
      const info = (m && m.layers && m.layers[l]) || {};
      const upd = (m && m.update_ratio && m.update_ratio[l]) || {};
      const cells = body.rows[l].cells;
      const values = [
        out ? "output" : `layer ${l + 1}`,
        out ? `${layers[l + 1]} · Linear` : `${layers[l + 1]} · ${info.kind || f.settings.activation}`,
        out ? "" : pct(info.dead),
        out ? "" : pct(info.saturated),
        ratio(upd.weight),
        ratio(upd.bias),
      ];
      for (let j = 0; j < 6; j++) {
        if (cells[j].textContent !== values[j]) cells[j].textContent = values[j];
      }
      // more than half the units dead or saturated: that layer has stopped learning
      cells[2].classList.toggle("warn", !out && typeof info.dead === "number" && info.dead > 0.5);
      cells[3].classList.toggle("warn", !out && typeof info.saturated === "number" && info.saturated > 0.5);
      // an update larger than 1/10 of the weight: a step too big (1e-3 is the usual rule)
      cells[4].classList.toggle("warn", typeof upd.weight === "number" && upd.weight > 0.1);
    }
  }

  function renderNanOrigin(f) {
    const n = f.nan_origin;
    const el = $("nan-origin");
    if (!n) {
      el.hidden = true;
      return;
    }
    const where = n.column === null || n.column === undefined ? "" : ` (${columnName(n.column, (f.layers || []).length)} in the drawing)`;
    const text =
      `NaN origin: ${n.tensor} is ${n.value} first, at epoch ${n.epoch}${where}` +
      `${n.detail ? `: ${n.detail}` : ""}. Training stopped; lower the learning rate and reset.`;
    setText("nan-origin", text);
    el.hidden = false;
  }

  // ---------------------------------------------------------------- the inspector
  function showTab(tab) {
    view.ui.tab = tab;
    for (const t of ["explain", "gradcheck", "reproduce"]) {
      $(`tab-${t}`).setAttribute("aria-selected", String(t === tab));
      $(`pane-${t}`).hidden = t !== tab;
    }
    drawNow(false); // the explained points are ringed only while their table shows
  }

  // one request at a time is shown as pending; an error reply ends it
  function setWaiting(what) {
    view.ui.waiting = what;
    for (const [id, kind] of [["explain-step", "explain"], ["gradcheck", "gradcheck"], ["reproduce", "reproduce"]]) {
      $(id).classList.toggle("busy", what === kind);
    }
  }

  function explainStep(point) {
    let idx = point;
    if (idx === undefined) {
      const text = $("explain-point").value.trim();
      idx = text === "" ? null : Number(text);
      if (idx !== null && !Number.isInteger(idx)) {
        showError(`explain: a training point's index is a whole number, got '${text}'`);
        return;
      }
    }
    showTab("explain");
    setWaiting("explain");
    send({ type: "explain_step", point: idx });
  }

  function applyExplain(e) {
    view.explain = e;
    view.ui.explainRow = 0;
    setWaiting(null);
    renderExplain();
    scheduleDraw();
    $("inspector").scrollIntoView({ block: "nearest" });
  }

  function applyGradcheck(g) {
    view.gradcheck = g;
    setWaiting(null);
    renderGradcheck();
  }

  function applyReproduce(r) {
    view.reproduce = r;
    setWaiting(null);
    renderReproduce();
  }

  // small DOM helpers for the tables
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null) continue;
      if (k === "className") node.className = v;
      else node.setAttribute(k, v);
    }
    node.append(...children.filter((c) => c !== null && c !== undefined));
    return node;
  }
  // a cell with a number: 5 significant digits shown, the full value in its title/data-value
  function num(v, attrs = {}) {
    const cls = [attrs.className, typeof v === "number" && v < 0 ? "neg" : null].filter(Boolean).join(" ");
    return el("td", { ...attrs, className: cls || null, title: typeof v === "number" ? String(v) : "not finite", "data-value": typeof v === "number" ? String(v) : "" }, fmtNum(v));
  }
  // a (rows x cols) matrix as a table: row and column labels
  function matrixTable(caption, M, rowNames, colNames, cellClass) {
    const head = el("tr", {}, el("th", {}, ""), ...colNames.map((n) => el("th", {}, n)));
    const rows = (M || []).map((row, j) => el("tr", {}, el("th", {}, rowNames[j]), ...(Array.isArray(row) ? row : [row]).map((v) => num(v, { className: cellClass }))));
    return el("div", {}, el("p", { className: "formula" }, ...caption), el("table", { className: "xtable" }, el("thead", {}, head), el("tbody", {}, ...rows)));
  }
  const sub = (n) => String(n).replace(/\d/g, (d) => "₀₁₂₃₄₅₆₇₈₉"[d]);
  const b = (text) => el("b", {}, text);

  const DERIVATIVES = {
    tanh: "1 − a²",
    sigmoid: "a·(1 − a)",
    relu: "1 if z > 0, else 0",
    leaky_relu: "1 if z > 0, else 0.01",
    elu: "1 if z > 0, else a + 1",
    softplus: "σ(z)",
    gelu: "GELU′(z)",
    linear: "1",
  };

  // "One step, explained": the numbers of the step, layer by layer, as cards from the input to
  // the output; each card: forward (z, a), backward (dL/da, δ, dL/db), the matrices (W, dL/dW,
  // the update) and the optimizer's state for Adam and momentum
  function renderExplain() {
    const e = view.explain;
    const box = $("explain-table");
    if (!e) return;
    const R = (e.input || []).length;
    const r = Math.min(view.ui.explainRow, Math.max(0, R - 1));
    // the row selector, for a batch
    const rowField = $("explain-row-field");
    rowField.hidden = R <= 1;
    if (R > 1) {
      const sel = $("explain-row");
      sel.replaceChildren(...e.indices.slice(0, R).map((idx, i) => el("option", { value: String(i) }, `${i}: training point #${idx}`)));
      sel.value = String(r);
    }
    const names = (e.feature_names || []).map((n) => FEATURE_LABELS[n] || n);
    const L = e.layers.length;
    const backward = new Map(e.backward.map((x) => [x.linear, x]));
    const updates = new Map(e.update.map((u) => [u.name, u]));
    const point = e.points[r];
    const target = e.targets[r];
    const B = e.batch;
    const optName = { sgd: "SGD", momentum: "SGD with momentum", adam: "Adam" }[e.optimizer] || e.optimizer;

    // the summary line
    const who =
      e.point === null || e.point === undefined
        ? `a mini-batch of ${B} training points${R < B ? ` (the first ${R} rows shown)` : ""}`
        : `training point #${e.point}`;
    const reg = e.regularization && e.regularization !== "none" ? `, ${e.regularization.toUpperCase()} ${e.reg_rate}` : "";
    const summary = el(
      "p",
      { className: "summary-line" },
      `One ${optName} step (lr ${e.lr}${reg}) on ${who}. `,
      "Training is paused and the epoch counter did not move. ",
      "Forward: ",
      b("z = W·a + b"),
      ", ",
      b("a = f(z)"),
      ". Backward: ",
      b("δ = dL/dz = dL/da ⊙ f′(z)"),
      ", ",
      b("dL/dW = δᵀ·a_prev"),
      " (summed over the batch; the loss is the batch mean, so δ carries the 1/B), ",
      b("dL/da_prev = δ·W"),
      ". Matrices: a row per neuron, a column per input of the layer.",
    );

    const cards = [];
    // the input card
    cards.push(
      el(
        "section",
        { className: "xcard", id: "explain-input" },
        el("h4", {}, "input a", sub(0), R > 1 || B > 1 ? ` · row ${r}: training point #${e.indices[r]}` : ""),
        el("p", { className: "formula" }, `point (x₁, x₂) = (${fmtNum(point[0])}, ${fmtNum(point[1])}) · class ${target}`),
        el(
          "table",
          { className: "xtable" },
          el("thead", {}, el("tr", {}, el("th", {}, "feature"), el("th", {}, "a₀"))),
          el("tbody", {}, ...names.map((n, i) => el("tr", {}, el("th", {}, n), num(e.input[r][i], { id: `explain-input-${i}` })))),
        ),
      ),
    );

    for (let li = 0; li < L; li++) {
      const layer = e.layers[li];
      const col = li + 1;
      const out = li === L - 1;
      const back = backward.get(layer.linear) || {};
      const next = out ? null : backward.get(e.layers[li + 1].linear);
      const nOut = layer.bias.length;
      const nIn = layer.weight[0] ? layer.weight[0].length : 0;
      const prevNames = li === 0 ? names : Array.from({ length: nIn }, (_, i) => `${li}.${i + 1}`);
      const unitNames = out
        ? Array.from({ length: nOut }, (_, j) => (nOut === 1 ? "class 1" : `class ${j}`))
        : Array.from({ length: nOut }, (_, j) => `${col}.${j + 1}`);
      const uw = updates.get(`${layer.linear}.weight`) || {};
      const ub = updates.get(`${layer.linear}.bias`) || {};
      const act = layer.activation;

      // per neuron: b, z, a (or p), dL/da, δ, dL/db, b after
      const head = ["neuron", "b", "z"];
      const db = B > 1 ? "dL/db (Σ batch)" : "dL/db";
      if (!out) head.push(`a = ${act}(z)`, "dL/da", "δ = dL/dz", db, "b′");
      else head.push(nOut === 1 ? "p = σ(z)" : "p = softmax(z)", "target", "δ = dL/dz", db, "b′");
      const rows = [];
      for (let j = 0; j < nOut; j++) {
        const cells = [el("th", {}, unitNames[j]), num(layer.bias[j]), num(layer.z[r][j], { id: `explain-z-${col}-${j}` })];
        if (!out) {
          cells.push(num(layer.a[r][j], { id: `explain-a-${col}-${j}` }));
          cells.push(num(next && next.grad_input ? next.grad_input[r][j] : null));
        } else {
          cells.push(num(e.output.probabilities[r][j], { id: `explain-p-${j}` }));
          const t = nOut === 1 ? target : Number(target === j);
          cells.push(el("td", {}, String(t)));
        }
        cells.push(num(back.delta ? back.delta[r][j] : null, { id: `explain-delta-${col}-${j}`, className: "delta" }));
        cells.push(num(back.grad_bias ? back.grad_bias[j] : null));
        cells.push(num(Array.isArray(ub.after) ? ub.after[j] : null, { className: "after" }));
        rows.push(el("tr", {}, ...cells));
      }
      const deriv = DERIVATIVES[act] || "f′(z)";
      const forward = out
        ? [b(`z = W·a${sub(li)} + b`), nOut === 1 ? ", p = σ(z) = P(class 1)" : ", p = softmax(z)"]
        : [b(`z = W·a${sub(li)} + b`), ", ", b(`a${sub(col)} = ${act}(z)`)];
      const backwardText = out
        ? nOut === 1
          ? [b("δ = (p − t) / B"), " (BCE with logits, mean over the batch)"]
          : [b("δ = (p − onehot(t)) / B"), " (cross-entropy, mean over the batch)"]
        : [b("δ = dL/da ⊙ f′(z)"), `, f′(z) = ${deriv}; dL/da comes from the layer after`];

      const penalty = back.penalty_weight ? [" + the ", e.regularization.toUpperCase(), " term (in the gradient)"] : [];
      const matrices = [
        matrixTable([b("W"), " (before the step)"], layer.weight, unitNames, prevNames),
        matrixTable([b("dL/dW = δᵀ·a"), b(sub(li)), B > 1 ? " (Σ batch)" : "", ...penalty], back.grad_weight, unitNames, prevNames, "delta"),
        matrixTable([b("W′"), " (after the step)"], uw.after, unitNames, prevNames, "after"),
      ];
      if (back.penalty_weight) matrices.splice(2, 0, matrixTable([b(`${e.regularization.toUpperCase()} term`), ` (rate ${e.reg_rate}) in dL/dW`], back.penalty_weight, unitNames, prevNames));
      if (e.optimizer === "adam") {
        matrices.push(matrixTable([b("m"), " (after)"], uw.m, unitNames, prevNames));
        matrices.push(matrixTable([b("v"), " (after)"], uw.v, unitNames, prevNames));
        matrices.push(matrixTable([b("W′ − W")], uw.update, unitNames, prevNames));
      } else if (e.optimizer === "momentum") {
        matrices.push(matrixTable([b("buf"), ` = ${uw.momentum ?? 0.9}·buf + dL/dW (after)`], uw.buffer, unitNames, prevNames));
      }
      cards.push(
        el(
          "section",
          { className: "xcard", id: `explain-layer-${col}` },
          el("h4", {}, out ? "output " : `layer ${col} `, el("code", {}, `${layer.linear}.Linear ${nIn} → ${nOut}${act ? ` + ${act}` : ""}`)),
          el("p", { className: "formula" }, "forward: ", ...forward, " · backward: ", ...backwardText),
          el("table", { className: "xtable" }, el("thead", {}, el("tr", {}, ...head.map((h) => el("th", {}, h)))), el("tbody", {}, ...rows)),
          el("p", { className: "formula" }, "update: ", b(updateRule(e, uw)), " (the same for b)"),
          el("div", { className: "matrices" }, ...matrices),
          adamLine(e, ub, "b"),
        ),
      );
    }

    const lossName = e.loss_fn === "BCEWithLogitsLoss" ? "−[t·log p + (1 − t)·log(1 − p)]" : "−log p_t";
    const loss = el(
      "p",
      { className: "loss-line" },
      "Loss ",
      el("code", {}, e.loss_fn),
      `: L = mean over the batch of ${lossName} = `,
      el("b", { id: "explain-loss", title: String(e.loss), "data-value": String(e.loss) }, fmtNum(e.loss)),
      B > 1 ? ` (B = ${B})` : " (B = 1)",
    );
    box.replaceChildren(summary, el("div", { className: "cards" }, ...cards), loss);
  }

  function updateRule(e, u) {
    if (e.optimizer === "adam") {
      const [b1, b2] = u.betas || [0.9, 0.999];
      return (
        `m = ${b1}·m + ${Number((1 - b1).toFixed(6))}·g, v = ${b2}·v + ${Number((1 - b2).toFixed(6))}·g², ` +
        `W′ = W − lr·m̂/(√v̂ + ε) with m̂ = m/(1 − ${b1}^t), v̂ = v/(1 − ${b2}^t), t = ${u.step}, lr = ${e.lr}, ε = ${u.eps}`
      );
    }
    if (e.optimizer === "momentum") return `buf = ${u.momentum ?? 0.9}·buf + g, W′ = W − lr·buf, lr = ${e.lr}`;
    return `W′ = W − lr·dL/dW, lr = ${e.lr}`;
  }

  // the bias's optimizer state, one line (Adam: m, v; momentum: the buffer)
  function adamLine(e, u, what) {
    if (!u || (e.optimizer !== "adam" && e.optimizer !== "momentum")) return null;
    const list = (v) => (Array.isArray(v) ? v.map(fmtNum).join(", ") : "–");
    if (e.optimizer === "adam") {
      return el("p", { className: "formula" }, `${what}: m = [${list(u.m)}], v = [${list(u.v)}], b′ − b = [${list(u.update)}]`);
    }
    return el("p", { className: "formula" }, `${what}: buf = [${list(u.buffer)}]`);
  }

  function renderGradcheck() {
    const g = view.gradcheck;
    if (!g) return;
    const status = g.status || (g.passed ? "PASSED" : "FAILED");
    const verdict = el("div", { id: "gradcheck-verdict", className: `verdict ${g.passed ? "passed" : "failed"}` }, status, el("span", { className: "muted" }, ` · ${g.verdict}`));
    const head = el("tr", {}, ...["tensor", "shape", "checked", "kinks", "worst abs. error", "worst rel. error", ""].map((h) => el("th", {}, h)));
    const sci = (x) => (typeof x === "number" ? x.toExponential(2) : "–");
    const rows = (g.rows || []).map((row) =>
      el(
        "tr",
        {},
        el("td", {}, el("code", {}, row.tensor)),
        el("td", {}, `(${(row.shape || []).join(", ")})`),
        el("td", {}, String(row.checked)),
        el("td", {}, String(row.kinks)),
        el("td", {}, sci(row.max_abs_err)),
        el("td", {}, sci(row.max_rel_err)),
        el("td", { className: row.status === "ok" ? "ok" : "fail" }, row.status),
      ),
    );
    const note = el(
      "p",
      { className: "muted" },
      `handgrad.check.gradcheck on a float64 copy of the network (input: ${g.points} training points) and of the loss. `,
      "A kink is an element whose finite-difference step crossed a point where the function is not differentiable (ReLU at 0): not compared.",
    );
    $("gradcheck-result").replaceChildren(verdict, el("table", { id: "gradcheck-table" }, el("thead", {}, head), el("tbody", {}, ...rows)), note);
  }

  function renderReproduce() {
    const r = view.reproduce;
    if (!r) return;
    setText("reproduce-command", r.command);
    $("copy-command").disabled = !r.command;
    const parts = [];
    parts.push(`${r.epochs} epoch${r.epochs === 1 ? "" : "s"}; the page's train loss now: ${fmtNum(r.train_loss)}.`);
    if (r.csv) parts.push(`Your points are saved in ${r.csv}.`);
    if (!r.exact) parts.push(`Not exact: ${r.note || "this run cannot be redone by one command"}.`);
    else if (r.note) parts.push(r.note);
    setText("reproduce-note", parts.join(" "));
    $("reproduce-note").classList.toggle("warn", !r.exact);
  }

  function copyCommand() {
    const r = view.reproduce;
    if (!r || !r.command) return;
    const done = () => {
      $("copy-command").textContent = "Copied";
      setTimeout(() => ($("copy-command").textContent = "Copy"), 1500);
    };
    const fallback = () => {
      // no clipboard API (not a secure context): select the text and copy it
      const range = document.createRange();
      range.selectNodeContents($("reproduce-command"));
      const sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      if (document.execCommand && document.execCommand("copy")) done();
      else showError("copy: the browser refused; the command is selected, press Ctrl+C");
    };
    if (navigator.clipboard && navigator.clipboard.writeText) navigator.clipboard.writeText(r.command).then(done, fallback);
    else fallback();
  }

  // ---------------------------------------------------------------- start
  window.playground = { view, send, receive, stats }; // for the browser test (and the console)
  wireControls();
  renderStatus();
  connect();
})();
