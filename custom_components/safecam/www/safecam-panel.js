// safecam zone and gate editor: a plain web component (no build step, no external code).
// Home Assistant sets `hass` on it (panel_custom). The background is the camera's anonymized view
// (camera_proxy of the safecam camera entity, fetched with the user's HA auth); never a raw frame.
// Zones are polygons, gates directed lines; coordinates are normalized 0..1 (x right, y down).
// Gate direction: s(q) = (p2 - p1) x (q - p1); "in" is crossing from s < 0 to s > 0: the arrow
// points into the s > 0 side.

const KINDS = ["area", "danger", "restricted", "equipment"];
const COLORS = { area: "#2e86de", danger: "#e74c3c", restricted: "#f39c12", equipment: "#8e44ad" };
const REFRESH_MS = 3000;
const SVG_NS = "http://www.w3.org/2000/svg";

const round = (v) => Math.round(Math.min(1, Math.max(0, v)) * 10000) / 10000;

class SafecamPanel extends HTMLElement {
  constructor() {
    super();
    this.attachShadow({ mode: "open" });
    this._hass = null;
    this._entries = [];
    this._entryId = null;
    this._camera = null;
    this._zones = [];
    this._gates = [];
    this._selected = null; // {type: "zone"|"gate", index}
    this._mode = "idle"; // idle | zone | gate
    this._draft = []; // points of the zone or gate being drawn
    this._drag = null; // {type, index, point} while a vertex is dragged
    this._size = { w: 1280, h: 720 };
    this._imgUrl = null;
    this._timer = null;
    this._started = false;
    this._narrow = false;
  }

  set hass(hass) {
    this._hass = hass;
    if (!this._started) {
      this._started = true;
      this._render();
      this._loadEntries();
    }
  }

  get hass() {
    return this._hass;
  }

  // Narrow screens hide HA's sidebar: a menu button opens it (HA listens for hass-toggle-menu).
  set narrow(v) {
    this._narrow = Boolean(v);
    const menu = this._$("menu");
    if (menu) menu.hidden = !this._narrow;
  }

  set route(_v) {}
  set panel(_v) {}

  disconnectedCallback() {
    clearInterval(this._timer);
    this._timer = null;
    if (this._imgUrl) URL.revokeObjectURL(this._imgUrl);
    this._imgUrl = null;
    this._started = false;
  }

  // ---- data ------------------------------------------------------------------------------
  async _loadEntries() {
    try {
      const res = await this._hass.callWS({ type: "safecam/entries" });
      this._entries = res.entries;
      const select = this._$("entry");
      select.innerHTML = "";
      for (const e of this._entries) {
        const opt = document.createElement("option");
        opt.value = e.entry_id;
        opt.textContent = e.title;
        select.appendChild(opt);
      }
      if (this._entries.length) {
        await this._loadScene(this._entries[0].entry_id);
      } else {
        this._message("No safecam camera is set up yet: add one under Settings > Devices & services.", true);
      }
    } catch (err) {
      this._message(`Could not list the cameras: ${err.message || err}`, true);
    }
  }

  async _loadScene(entryId) {
    this._entryId = entryId;
    this._$("entry").value = entryId;
    try {
      const res = await this._hass.callWS({ type: "safecam/scene/get", entry_id: entryId });
      this._zones = res.zones.map((z) => ({ name: z.name, kind: z.kind || "area", polygon: z.polygon.map((p) => [...p]) }));
      this._gates = res.gates.map((g) => ({ name: g.name, line: g.line.map((p) => [...p]) }));
      this._camera = res.camera_entity_id;
      this._selected = null;
      this._setMode("idle");
      this._message("");
      this._startSnapshots();
      this._update();
    } catch (err) {
      this._message(`Could not load the zones: ${err.message || err}`, true);
    }
  }

  async _save() {
    const zones = this._zones.map((z) => ({ name: z.name.trim(), kind: z.kind, polygon: z.polygon.map((p) => p.map(round)) }));
    const gates = this._gates.map((g) => ({ name: g.name.trim(), line: g.line.map((p) => p.map(round)) }));
    this._message("Saving...");
    try {
      await this._hass.callWS({ type: "safecam/scene/set", entry_id: this._entryId, zones, gates });
      this._message("Saved: the camera uses the new zones and gates.");
    } catch (err) {
      this._message(`Not saved: ${err.message || err}`, true);
    }
  }

  _startSnapshots() {
    clearInterval(this._timer);
    this._fetchSnapshot();
    this._timer = setInterval(() => this._fetchSnapshot(), REFRESH_MS);
  }

  async _fetchSnapshot() {
    if (!this._camera || !this._hass) return;
    try {
      const resp = await this._hass.fetchWithAuth(`/api/camera_proxy/${this._camera}?t=${Date.now()}`);
      if (!resp.ok) return;
      const url = URL.createObjectURL(await resp.blob());
      const img = this._$("snapshot");
      img.onload = () => {
        if (img.naturalWidth && (img.naturalWidth !== this._size.w || img.naturalHeight !== this._size.h)) {
          this._size = { w: img.naturalWidth, h: img.naturalHeight };
          this._update();
        }
        if (this._imgUrl && this._imgUrl !== url) URL.revokeObjectURL(this._imgUrl);
        this._imgUrl = url;
      };
      img.src = url;
    } catch (_err) {
      // the next refresh tries again (the camera may be reconnecting)
    }
  }

  // ---- editing ---------------------------------------------------------------------------
  _uniqueName(prefix) {
    const names = new Set([...this._zones, ...this._gates].map((i) => i.name));
    let n = 1;
    while (names.has(`${prefix}${n}`)) n += 1;
    return `${prefix}${n}`;
  }

  _setMode(mode) {
    this._mode = mode;
    this._draft = [];
    const hints = {
      idle: "Select an item to edit it: drag its points, rename it, change its kind or direction.",
      zone: "Click the corners of the zone; double-click or press Finish to close it.",
      gate: "Press and drag across the passage to draw the gate; the arrow shows the in-direction.",
    };
    this._$("hint").textContent = hints[mode];
    this._$("finish").hidden = mode !== "zone";
    this._$("cancel").hidden = mode === "idle";
    this._update();
  }

  _finishZone() {
    if (this._draft.length < 3) {
      this._message("A zone needs at least 3 points.", true);
      return;
    }
    this._zones.push({ name: this._uniqueName("zone"), kind: "area", polygon: this._draft });
    this._selected = { type: "zone", index: this._zones.length - 1 };
    this._setMode("idle");
  }

  _point(ev) {
    const r = this._$("overlay").getBoundingClientRect();
    return [round((ev.clientX - r.left) / r.width), round((ev.clientY - r.top) / r.height)];
  }

  _onPointerDown(ev) {
    const overlay = this._$("overlay");
    const handle = ev.target.closest ? ev.target.closest("[data-vertex]") : null;
    if (this._mode === "idle" && handle) {
      const [type, index, point] = handle.dataset.vertex.split(":");
      this._drag = { type, index: Number(index), point: Number(point) };
      overlay.setPointerCapture(ev.pointerId);
      ev.preventDefault();
    } else if (this._mode === "gate") {
      const p = this._point(ev);
      this._draft = [p, p];
      overlay.setPointerCapture(ev.pointerId);
      ev.preventDefault();
      this._update();
    }
  }

  _onPointerMove(ev) {
    if (this._drag) {
      const { type, index, point } = this._drag;
      const pts = type === "zone" ? this._zones[index].polygon : this._gates[index].line;
      pts[point] = this._point(ev);
      this._update();
    } else if (this._mode === "gate" && this._draft.length === 2) {
      this._draft[1] = this._point(ev);
      this._update();
    }
  }

  _onPointerUp(ev) {
    if (this._drag) {
      this._drag = null;
      this._renderList();
      return;
    }
    if (this._mode === "gate" && this._draft.length === 2) {
      this._draft[1] = this._point(ev);
      const [a, b] = this._draft;
      if (Math.hypot(b[0] - a[0], b[1] - a[1]) < 0.02) {
        this._draft = [];
        this._update();
        return; // a click, not a drag
      }
      this._gates.push({ name: this._uniqueName("gate"), line: [a, b] });
      this._selected = { type: "gate", index: this._gates.length - 1 };
      this._setMode("idle");
    }
  }

  _onClick(ev) {
    if (this._mode !== "zone") return;
    const p = this._point(ev);
    const last = this._draft[this._draft.length - 1];
    if (!last || Math.hypot(p[0] - last[0], p[1] - last[1]) > 0.005) this._draft.push(p);
    this._update();
  }

  _onDblClick(ev) {
    if (this._mode === "zone") {
      ev.preventDefault();
      this._finishZone();
    }
  }

  // ---- rendering -------------------------------------------------------------------------
  _$(id) {
    return this.shadowRoot.getElementById(id);
  }

  _message(text, error = false) {
    const el = this._$("message");
    el.textContent = text;
    el.className = error ? "error" : "ok";
  }

  _render() {
    this.shadowRoot.innerHTML = `
      <style>
        :host { display: block; padding: 16px; color: var(--primary-text-color); background: var(--primary-background-color);
                font-family: var(--paper-font-body1_-_font-family, sans-serif); min-height: 100%; box-sizing: border-box; }
        .bar { display: flex; flex-wrap: wrap; gap: 8px; align-items: center; margin-bottom: 8px; }
        button, select, input { font: inherit; padding: 4px 8px; }
        button.primary { background: var(--primary-color); color: var(--text-primary-color, #fff); border: none; border-radius: 4px; }
        .main { display: flex; gap: 16px; flex-wrap: wrap; align-items: flex-start; }
        .stage { position: relative; flex: 1 1 640px; max-width: 1100px; background: #222; line-height: 0; }
        .stage img { width: 100%; display: block; min-height: 200px; }
        .stage svg { position: absolute; inset: 0; width: 100%; height: 100%; touch-action: none; cursor: crosshair; }
        .list { flex: 0 1 360px; }
        .item { display: flex; gap: 6px; align-items: center; padding: 6px; border: 1px solid var(--divider-color, #ccc);
                border-radius: 4px; margin-bottom: 6px; }
        .item.selected { outline: 2px solid var(--primary-color); }
        .item input { width: 9em; }
        .swatch { width: 12px; height: 12px; border-radius: 2px; flex: none; }
        #message.error { color: var(--error-color, #c0392b); }
        #message.ok { color: var(--success-color, #2e7d32); }
        #hint { color: var(--secondary-text-color); font-size: 90%; }
        h1 { font-size: 20px; margin: 0 0 12px; font-weight: 400; }
      </style>
      <h1><button id="menu" hidden aria-label="Menu">&#9776;</button> Safecam zones and gates</h1>
      <div class="bar">
        <label>Camera <select id="entry"></select></label>
        <button id="add-zone">Add zone</button>
        <button id="add-gate">Add gate</button>
        <button id="finish" hidden>Finish zone</button>
        <button id="cancel" hidden>Cancel</button>
        <button id="save" class="primary">Save</button>
        <span id="message"></span>
      </div>
      <div id="hint"></div>
      <div class="main">
        <div class="stage">
          <img id="snapshot" alt="Anonymized camera view">
          <svg id="overlay" xmlns="${SVG_NS}"></svg>
        </div>
        <div class="list">
          <h3>Zones</h3><div id="zones"></div>
          <h3>Gates</h3><div id="gates"></div>
        </div>
      </div>`;
    this._$("entry").addEventListener("change", (ev) => this._loadScene(ev.target.value));
    this._$("add-zone").addEventListener("click", () => this._setMode("zone"));
    this._$("add-gate").addEventListener("click", () => this._setMode("gate"));
    this._$("finish").addEventListener("click", () => this._finishZone());
    this._$("cancel").addEventListener("click", () => this._setMode("idle"));
    this._$("save").addEventListener("click", () => this._save());
    this._$("menu").hidden = !this._narrow;
    this._$("menu").addEventListener("click", () =>
      this.dispatchEvent(new Event("hass-toggle-menu", { bubbles: true, composed: true })));
    const overlay = this._$("overlay");
    overlay.addEventListener("pointerdown", (ev) => this._onPointerDown(ev));
    overlay.addEventListener("pointermove", (ev) => this._onPointerMove(ev));
    overlay.addEventListener("pointerup", (ev) => this._onPointerUp(ev));
    overlay.addEventListener("click", (ev) => this._onClick(ev));
    overlay.addEventListener("dblclick", (ev) => this._onDblClick(ev));
    this._setMode("idle");
  }

  _update() {
    this._renderOverlay();
    this._renderList();
  }

  _el(name, attrs, parent) {
    const el = document.createElementNS(SVG_NS, name);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    if (parent) parent.appendChild(el);
    return el;
  }

  _renderOverlay() {
    const svg = this._$("overlay");
    if (!svg) return;
    const { w, h } = this._size;
    const px = (p) => [p[0] * w, p[1] * h];
    const stroke = Math.max(2, w / 400);
    svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
    svg.setAttribute("preserveAspectRatio", "none");
    svg.innerHTML = "";
    const defs = this._el("defs", {}, svg);
    const marker = this._el("marker", { id: "arrow", viewBox: "0 0 10 10", refX: "8", refY: "5", markerWidth: "4", markerHeight: "4", orient: "auto" }, defs);
    this._el("path", { d: "M0,0 L10,5 L0,10 z", fill: "#2ecc71" }, marker);
    const isSel = (type, i) => this._selected && this._selected.type === type && this._selected.index === i;

    this._zones.forEach((z, i) => {
      const color = COLORS[z.kind] || COLORS.area;
      const poly = this._el("polygon", {
        points: z.polygon.map((p) => px(p).join(",")).join(" "),
        fill: color, "fill-opacity": isSel("zone", i) ? "0.35" : "0.2", stroke: color, "stroke-width": stroke,
        "data-item": `zone:${i}`,
      }, svg);
      poly.addEventListener("pointerdown", () => { if (this._mode === "idle") { this._selected = { type: "zone", index: i }; this._update(); } });
      const [cx, cy] = px(z.polygon[0]);
      const label = this._el("text", { x: cx + 4, y: cy - 4, fill: "#fff", "font-size": Math.max(14, w / 60), stroke: "#000", "stroke-width": 0.6 }, svg);
      label.textContent = z.name;
    });

    this._gates.forEach((g, i) => {
      const [a, b] = g.line.map(px);
      const line = this._el("line", { x1: a[0], y1: a[1], x2: b[0], y2: b[1], stroke: "#f1c40f", "stroke-width": stroke * (isSel("gate", i) ? 2 : 1.5),
        "data-item": `gate:${i}` }, svg);
      line.addEventListener("pointerdown", () => { if (this._mode === "idle") { this._selected = { type: "gate", index: i }; this._update(); } });
      this._arrow(svg, a, b, stroke);
      const label = this._el("text", { x: a[0] + 4, y: a[1] - 6, fill: "#fff", "font-size": Math.max(14, w / 60), stroke: "#000", "stroke-width": 0.6 }, svg);
      label.textContent = g.name;
    });

    // handles of the selected item: drag them to move its points
    if (this._selected && this._mode === "idle") {
      const { type, index } = this._selected;
      const item = type === "zone" ? this._zones[index] : this._gates[index];
      if (item) {
        (type === "zone" ? item.polygon : item.line).forEach((p, j) => {
          const [x, y] = px(p);
          this._el("circle", { cx: x, cy: y, r: stroke * 3, fill: "#fff", stroke: "#000", "data-vertex": `${type}:${index}:${j}`, style: "cursor: move" }, svg);
        });
      }
    }

    // the item being drawn
    if (this._mode === "zone" && this._draft.length) {
      this._el("polyline", { points: this._draft.map((p) => px(p).join(",")).join(" "), fill: "none", stroke: "#fff", "stroke-width": stroke, "stroke-dasharray": "6 4" }, svg);
      for (const p of this._draft) {
        const [x, y] = px(p);
        this._el("circle", { cx: x, cy: y, r: stroke * 2, fill: "#fff" }, svg);
      }
    } else if (this._mode === "gate" && this._draft.length === 2) {
      const [a, b] = this._draft.map(px);
      this._el("line", { x1: a[0], y1: a[1], x2: b[0], y2: b[1], stroke: "#fff", "stroke-width": stroke, "stroke-dasharray": "6 4" }, svg);
      this._arrow(svg, a, b, stroke);
    }
  }

  // The in-direction: from the s < 0 side to the s > 0 side. In pixels (x right, y down) the normal
  // (-dy, dx) of a -> b has s = dx^2 + dy^2 > 0, so the arrow runs along it through the midpoint.
  _arrow(svg, a, b, stroke) {
    const dx = b[0] - a[0];
    const dy = b[1] - a[1];
    const len = Math.hypot(dx, dy);
    if (len < 1) return;
    const size = Math.min(Math.max(len * 0.3, 25), 80);
    const n = [-dy / len, dx / len];
    const m = [(a[0] + b[0]) / 2, (a[1] + b[1]) / 2];
    this._el("line", {
      x1: m[0] - n[0] * size, y1: m[1] - n[1] * size, x2: m[0] + n[0] * size, y2: m[1] + n[1] * size,
      stroke: "#2ecc71", "stroke-width": stroke * 1.5, "marker-end": "url(#arrow)", class: "in-arrow",
    }, svg);
    const t = this._el("text", { x: m[0] + n[0] * (size + 10), y: m[1] + n[1] * (size + 10), fill: "#2ecc71", "font-size": 16, stroke: "#000", "stroke-width": 0.5 }, svg);
    t.textContent = "in";
  }

  _renderList() {
    const zonesEl = this._$("zones");
    const gatesEl = this._$("gates");
    if (!zonesEl) return;
    zonesEl.innerHTML = "";
    gatesEl.innerHTML = "";
    const row = (type, i, parent) => {
      const div = document.createElement("div");
      div.className = "item" + (this._selected && this._selected.type === type && this._selected.index === i ? " selected" : "");
      div.dataset.item = `${type}:${i}`;
      div.addEventListener("click", (ev) => {
        if (ev.target.tagName === "BUTTON") return;
        this._selected = { type, index: i };
        this._renderOverlay();
        for (const other of this.shadowRoot.querySelectorAll(".item")) other.classList.toggle("selected", other === div);
      });
      parent.appendChild(div);
      return div;
    };
    this._zones.forEach((z, i) => {
      const div = row("zone", i, zonesEl);
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = COLORS[z.kind] || COLORS.area;
      const name = document.createElement("input");
      name.value = z.name;
      name.className = "name";
      name.setAttribute("aria-label", "Zone name");
      name.addEventListener("input", () => { z.name = name.value; this._renderOverlay(); });
      const kind = document.createElement("select");
      kind.className = "kind";
      kind.setAttribute("aria-label", "Zone kind");
      for (const k of KINDS) {
        const opt = document.createElement("option");
        opt.value = k;
        opt.textContent = k;
        kind.appendChild(opt);
      }
      kind.value = z.kind;
      kind.addEventListener("change", () => { z.kind = kind.value; this._update(); });
      const del = document.createElement("button");
      del.textContent = "Delete";
      del.className = "delete";
      del.addEventListener("click", () => { this._zones.splice(i, 1); this._selected = null; this._update(); });
      div.append(swatch, name, kind, del);
    });
    this._gates.forEach((g, i) => {
      const div = row("gate", i, gatesEl);
      const name = document.createElement("input");
      name.value = g.name;
      name.className = "name";
      name.setAttribute("aria-label", "Gate name");
      name.addEventListener("input", () => { g.name = name.value; this._renderOverlay(); });
      const flip = document.createElement("button");
      flip.textContent = "Flip direction";
      flip.className = "flip";
      flip.addEventListener("click", () => { g.line = [g.line[1], g.line[0]]; this._update(); });
      const del = document.createElement("button");
      del.textContent = "Delete";
      del.className = "delete";
      del.addEventListener("click", () => { this._gates.splice(i, 1); this._selected = null; this._update(); });
      div.append(name, flip, del);
    });
  }
}

if (!customElements.get("safecam-panel")) customElements.define("safecam-panel", SafecamPanel);
