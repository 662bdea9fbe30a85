// The supervisor wall: one tile per agent, live over /ws/wall/ (docs/wall.md).
//
// The server sends a snapshot, then numbered deltas. The page keeps the agents in a Map keyed by
// external id, renders tiles once and patches them, and ticks every tile's clock once a second.
// After a drop it reconnects with backoff; every (re)connect starts from a fresh snapshot, so
// the page never has to merge two histories.
"use strict";

(() => {
  // The states and channels come from the page (the server's model choices), with their labels.
  const VOCABULARY = JSON.parse(document.querySelector("#vocabulary").textContent);
  const STATES = VOCABULARY.states.map((s) => s.value);
  const CHANNEL_WORD = Object.fromEntries(VOCABULARY.channels.map((c) => [c.value, c.label]));
  const STATE_WORD = Object.fromEntries(VOCABULARY.states.map((s) => [s.value, s.label]));
  const LANGUAGE = document.documentElement.lang || undefined;
  // Words come from the JavaScript catalog (/jsi18n/, docs/i18n.md) in the page's language.
  const fmt = (text, values) => interpolate(text, values, true);
  // Compact tiles abbreviate where a label is too long for them; others show the label.
  const SHORT = {
    available: pgettext("compact tile", "Avail"),
    acw: pgettext("compact tile", "ACW"),
    offline: pgettext("compact tile", "Off"),
  };
  const REASON_SHORT = {
    break: pgettext("compact tile", "Brk"),
    lunch: pgettext("compact tile", "Lnch"),
    meeting: pgettext("compact tile", "Meet"),
    training: pgettext("compact tile", "Trng"),
  };
  const SUMMARY_EVERY_MS = 30_000;
  const BACKOFF_MS = [500, 1000, 2000, 4000, 8000, 15000];
  const STORE_KEY = "acw-wall-view";
  // Where this wall reads from: a user's wall, or a kiosk wall opened from a TV link, which is
  // read-only (no agent dialog, no acknowledging) and keeps no view settings (docs/wall.md).
  const ENDPOINTS = JSON.parse(document.querySelector("#wall-endpoints").textContent);
  const KIOSK = Boolean(ENDPOINTS.kiosk);

  const $ = (sel) => document.querySelector(sel);
  const grid = $("#grid");
  const emptyNote = $("#grid-empty");
  const conn = $("#conn");
  const dialog = $("#agent-dialog");
  const csrfToken = KIOSK ? "" : document.querySelector("#csrf input[name=csrfmiddlewaretoken]").value;

  const agents = new Map(); // external id → agent payload
  const tiles = new Map(); // external id → { el, parts, last }
  const alerts = new Map(); // alert id → alert payload
  let summary = JSON.parse($("#wall-summary").textContent);
  let clockOffset = 0; // server time − browser time, in ms
  let orderDirty = true;

  const saved = KIOSK ? {} : JSON.parse(localStorage.getItem(STORE_KEY) || "{}");
  const view = {
    team: saved.team || "",
    sort: saved.sort || "longest",
    density: saved.density || "comfortable",
    states: new Set(saved.states || []),
    search: "",
    alertsOpen: saved.alertsOpen !== false,
  };

  // --- Time ------------------------------------------------------------------------------

  const now = () => Date.now() + clockOffset;
  const ms = (iso) => (iso ? Date.parse(iso) : NaN);

  function clock(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const sec = String(s % 60).padStart(2, "0");
    return h ? `${h}:${String(m).padStart(2, "0")}:${sec}` : `${m}:${sec}`;
  }

  function syncClock(serverIso) {
    const server = ms(serverIso);
    if (!Number.isNaN(server)) clockOffset = server - Date.now();
  }

  // --- Colour rules ----------------------------------------------------------------------

  // An ACW tile colours itself from the points the server put in its payload (the server
  // resolves the ACW policy): red once overrun or past acw_red_at, amber past acw_amber_at.
  // An untimed ACW without those points, and every other state, uses the time-in-state tiers.
  function acwLevel(agent, t) {
    if (agent.acw_overrun || t >= ms(agent.acw_red_at)) return "red";
    if (t >= ms(agent.acw_amber_at)) return "amber";
    if (agent.acw_deadline) return "";
    return tierLevel("acw", (t - ms(agent.acw_started_at || agent.since)) / 1000);
  }

  function tierLevel(state, elapsed) {
    const tiers = summary.config.tiers[state];
    if (!tiers) return "";
    if (elapsed >= tiers[2]) return "red";
    if (elapsed >= tiers[1]) return "amber";
    if (elapsed >= tiers[0]) return "notice";
    return "";
  }

  function levelOf(agent, t) {
    if (agent.state === "acw") return acwLevel(agent, t);
    return tierLevel(agent.state, (t - ms(agent.since)) / 1000);
  }

  // --- Words -------------------------------------------------------------------------------

  function stateWord(agent) {
    switch (agent.state) {
      case "available": return gettext("Available");
      case "on_interaction": return onChannel(agent.channel);
      case "acw": return agent.acw_extensions ? fmt(gettext("ACW +%(count)s"), { count: agent.acw_extensions }) : gettext("ACW");
      case "not_ready": return agent.reason ? fmt(gettext("Not ready · %(reason)s"), { reason: agent.reason }) : gettext("Not ready");
      default: return gettext("Offline");
    }
  }

  // "On phone", "On e-mail" (each its own phrase: languages say them differently); any other
  // channel reads "On interaction".
  const ON_CHANNEL = { phone: gettext("On phone"), chat: gettext("On chat"), email: gettext("On e-mail") };
  const onChannel = (channel) => ON_CHANNEL[channel] || gettext("On interaction");

  function shortWord(agent) {
    if (agent.state === "on_interaction") {
      return {
        phone: pgettext("compact tile", "Call"),
        chat: pgettext("compact tile", "Chat"),
        email: pgettext("compact tile", "Mail"),
      }[agent.channel] || pgettext("compact tile", "Busy");
    }
    if (agent.state === "not_ready") return REASON_SHORT[agent.reason] || (agent.reason || pgettext("compact tile", "NR")).slice(0, 4);
    return SHORT[agent.state] || agent.state;
  }

  // --- Tiles -------------------------------------------------------------------------------

  function makeTile(id) {
    const el = document.createElement("article");
    el.className = "tile";
    el.tabIndex = 0;
    el.dataset.agent = id;
    el.innerHTML =
      '<span class="t-name"></span>' +
      '<span class="t-state"><svg class="t-icon" aria-hidden="true"><use href="#i-other"/></svg>' +
      '<span class="t-word"></span></span>' +
      '<span class="t-team"></span><span class="t-time">0:00</span>' +
      '<div class="t-bar"><span></span></div>';
    const parts = {
      name: el.querySelector(".t-name"),
      icon: el.querySelector(".t-icon"),
      use: el.querySelector(".t-icon use"),
      team: el.querySelector(".t-team"),
      state: el.querySelector(".t-word"),
      time: el.querySelector(".t-time"),
      bar: el.querySelector(".t-bar > span"),
    };
    const tile = { el, parts, last: {} };
    tiles.set(id, tile);
    return tile;
  }

  function setText(tile, key, node, value) {
    if (tile.last[key] !== value) {
      node.textContent = value;
      tile.last[key] = value;
    }
  }

  function paintTile(agent, flash) {
    const tile = tiles.get(agent.agent) || makeTile(agent.agent);
    const { el, parts } = tile;
    el.dataset.state = agent.state;
    setText(tile, "name", parts.name, agent.name);
    el.title = `${agent.name} (${agent.agent}) — ${agent.team}`;
    setText(tile, "team", parts.team, agent.team);
    const compact = view.density === "compact";
    const word = compact ? shortWord(agent) : stateWord(agent);
    // A chat agent holding several contacts shows how many (docs/wall.md, open_contacts).
    setText(tile, "state", parts.state, agent.open_contacts > 1 ? `${word} ×${agent.open_contacts}` : word);
    const channel = agent.state === "on_interaction" || agent.state === "acw" ? agent.channel || "other" : "";
    parts.icon.style.display = channel ? "" : "none";
    if (channel) parts.use.setAttribute("href", `#i-${channel}`);
    tickTile(tile, agent, now());
    if (flash) {
      el.classList.remove("flash");
      void el.offsetWidth; // restart the animation
      el.classList.add("flash");
    }
  }

  function tickTile(tile, agent, t) {
    const { el, parts } = tile;
    let text;
    if (agent.state === "acw" && agent.acw_deadline) {
      const remaining = (ms(agent.acw_deadline) - t) / 1000;
      text = remaining >= 0 ? `−${clock(Math.ceil(remaining))}` : `+${clock(-remaining)}`;
      const started = ms(agent.acw_started_at || agent.since);
      const span = ms(agent.acw_deadline) - started;
      const done = span > 0 ? Math.min(1, (t - started) / span) : 1;
      const width = `${Math.round(done * 100)}%`;
      if (tile.last.bar !== width) {
        parts.bar.style.width = width;
        tile.last.bar = width;
      }
    } else {
      text = agent.since ? clock((t - ms(agent.since)) / 1000) : "–";
    }
    setText(tile, "time", parts.time, text);
    const level = levelOf(agent, t);
    if (tile.last.level !== level) {
      el.dataset.level = level;
      tile.last.level = level;
    }
  }

  function removeTile(id) {
    const tile = tiles.get(id);
    if (tile) tile.el.remove();
    tiles.delete(id);
  }

  // --- Filter, sort, counts ----------------------------------------------------------------

  function matches(agent) {
    if (view.team && agent.team !== view.team) return false;
    if (view.states.size && !view.states.has(agent.state)) return false;
    if (view.search) {
      const q = view.search;
      if (!agent.name.toLowerCase().includes(q) && !agent.agent.toLowerCase().includes(q)) return false;
    }
    return true;
  }

  const byName = (a, b) => a.name.localeCompare(b.name) || a.agent.localeCompare(b.agent);
  const SORTS = {
    name: byName,
    team: (a, b) => a.team.localeCompare(b.team) || byName(a, b),
    // Longest in state first; offline agents last, whatever their time.
    longest: (a, b) =>
      (a.state === "offline") - (b.state === "offline") ||
      (ms(a.since) || Infinity) - (ms(b.since) || Infinity) ||
      byName(a, b),
  };

  function relayout() {
    orderDirty = false;
    const shown = [...agents.values()].filter(matches).sort(SORTS[view.sort] || SORTS.longest);
    const fragment = document.createDocumentFragment();
    const keep = new Set();
    for (const agent of shown) {
      const tile = tiles.get(agent.agent) || (paintTile(agent, false), tiles.get(agent.agent));
      keep.add(agent.agent);
      fragment.appendChild(tile.el);
    }
    for (const [id, tile] of tiles) if (!keep.has(id)) tile.el.remove();
    grid.appendChild(fragment);
    emptyNote.hidden = shown.length > 0 || agents.size === 0;
    $("#shown-count").textContent = fmt(
      gettext("%(shown)s of %(total)s agents"),
      { shown: shown.length, total: agents.size },
    );
  }

  function refreshCounts(t) {
    const counts = Object.fromEntries(STATES.map((s) => [s, 0]));
    let longestAcw = -1;
    let longestAgent = null;
    for (const agent of agents.values()) {
      if (view.team && agent.team !== view.team) continue;
      counts[agent.state] = (counts[agent.state] || 0) + 1;
      if (agent.state === "acw") {
        const elapsed = (t - ms(agent.acw_started_at || agent.since)) / 1000;
        if (elapsed > longestAcw) {
          longestAcw = elapsed;
          longestAgent = agent;
        }
      }
    }
    for (const state of STATES) {
      const node = document.querySelector(`[data-count="${state}"]`);
      const value = String(counts[state]);
      if (node.textContent !== value) node.textContent = value;
    }
    $("#acw-now").textContent = String(counts.acw);
    const longest = $("#acw-longest");
    longest.textContent = longestAgent ? clock(longestAcw) : "–";
    longest.dataset.level = longestAgent ? levelOf(longestAgent, t) : "";
    longest.parentElement.title = longestAgent ? `${longestAgent.name} (${longestAgent.team})` : "";
  }

  const seconds = (value) => fmt(gettext("%(seconds)s s"), { seconds: Math.round(value) });

  function refreshKpis() {
    const k = summary.kpis;
    syncClock(k.computed_at);
    $("#kpi-n").textContent = String(k.interactions);
    $("#kpi-target").textContent = seconds(k.target_avg_seconds);
    const box = $("#kpi");
    if (k.avg_acw_seconds == null) {
      $("#kpi-avg").textContent = "–";
      box.dataset.level = "none";
      return;
    }
    $("#kpi-avg").textContent = seconds(k.avg_acw_seconds);
    const ratio = k.avg_acw_seconds / (k.target_avg_seconds || 1);
    box.dataset.level = ratio <= 1 ? "ok" : ratio <= 1.2 ? "amber" : "red";
  }

  // An ACW whose deadline has passed is shown as what the server said its timeout makes it
  // (acw_timeout), without waiting for the worker to write it: a late or stopped worker must
  // not leave supervisors looking at an ACW that is already over. The worker's write then
  // arrives as a newer version of the same state.
  function timedOut(agent, t) {
    if (agent.state !== "acw" || !agent.acw_deadline || !agent.acw_timeout) return null;
    if (t < ms(agent.acw_deadline)) return null;
    return {
      ...agent,
      state: agent.acw_timeout.state,
      reason: agent.acw_timeout.reason,
      since: agent.acw_deadline,
      interaction_id: null,
      channel: null,
      acw_deadline: null,
      acw_started_at: null,
      acw_extensions: 0,
      open_contacts: 0,
      acw_timeout: null,
    };
  }

  function tick() {
    const t = now();
    for (const current of [...agents.values()]) {
      const after = timedOut(current, t);
      if (after) upsert(after, true);
    }
    for (const agent of agents.values()) {
      const tile = tiles.get(agent.agent);
      if (tile && tile.el.isConnected) tickTile(tile, agent, t);
    }
    refreshCounts(t);
    if (dialog.open) fillDialog();
  }

  let frame = 0;
  function schedule() {
    if (!frame) frame = requestAnimationFrame(() => {
      frame = 0;
      if (orderDirty) relayout();
      refreshCounts(now());
    });
  }

  // --- Applying frames ---------------------------------------------------------------------

  function upsert(agent, flash) {
    const before = agents.get(agent.agent);
    agents.set(agent.agent, agent);
    paintTile(agent, flash && before && before.state !== agent.state);
    if (!before || before.state !== agent.state || before.since !== agent.since ||
        before.team !== agent.team || before.name !== agent.name) {
      orderDirty = true;
    }
  }

  function applySnapshot(frame) {
    const incoming = new Set(frame.agents.map((a) => a.agent));
    for (const id of [...agents.keys()]) {
      if (!incoming.has(id)) {
        agents.delete(id);
        removeTile(id);
      }
    }
    for (const agent of frame.agents) upsert(agent, false);
    alerts.clear();
    for (const alert of frame.alerts || []) alerts.set(alertKey(alert), alert);
    renderAlerts();
    orderDirty = true;
  }

  function handle(frame) {
    switch (frame.type) {
      case "snapshot": applySnapshot(frame); break;
      case "agent": upsert(frame.agent, true); break;
      case "agents": for (const agent of frame.agents) upsert(agent, true); break;
      case "agent_removed":
        agents.delete(frame.agent);
        removeTile(frame.agent);
        orderDirty = true;
        break;
      case "alert": applyAlert(frame.alert); break;
      default: return;
    }
    if (dialog.open) fillDialog();
    schedule();
  }

  // --- Connection --------------------------------------------------------------------------

  let socket = null;
  let attempt = 0;
  let expectedSeq = 1;
  let retryTimer = 0;

  function setStatus(status, text) {
    conn.dataset.status = status;
    conn.querySelector(".conn-text").textContent = text;
  }

  function connect() {
    clearTimeout(retryTimer);
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    setStatus("connecting", attempt ? gettext("Reconnecting…") : gettext("Connecting…"));
    const ws = new WebSocket(`${scheme}://${location.host}${ENDPOINTS.socket}`);
    socket = ws;
    expectedSeq = 1;
    ws.onmessage = (event) => {
      if (ws !== socket) return;
      const frame = JSON.parse(event.data);
      if (frame.seq !== expectedSeq) {
        // A frame went missing between server and page: start over from a snapshot.
        setStatus("resyncing", gettext("Resyncing…"));
        ws.close(4000, "seq gap");
        return;
      }
      expectedSeq = frame.seq + 1;
      if (frame.type === "snapshot") {
        attempt = 0;
        setStatus("live", gettext("Live"));
        document.body.dataset.wsSnapshots = String(Number(document.body.dataset.wsSnapshots || 0) + 1);
      }
      handle(frame);
    };
    ws.onclose = (event) => {
      if (ws !== socket) return;
      socket = null;
      if (event.code === 4403) {
        // The server revoked this wall (account deactivated, signed out, no longer allowed):
        // reload, so the tiles go and the page says what the user may do now.
        location.reload();
        return;
      }
      const wait = BACKOFF_MS[Math.min(attempt, BACKOFF_MS.length - 1)] * (0.8 + Math.random() * 0.4);
      attempt += 1;
      let left = Math.ceil(wait / 1000);
      const retrying = () => fmt(gettext("Offline — retrying in %(seconds)s s"), { seconds: left });
      setStatus("offline", retrying());
      const countdown = setInterval(() => {
        left -= 1;
        if (left > 0 && !socket) setStatus("offline", retrying());
        else clearInterval(countdown);
      }, 1000);
      retryTimer = setTimeout(() => {
        clearInterval(countdown);
        connect();
      }, wait);
    };
  }

  // Come back at once when the machine wakes up or the network returns.
  window.addEventListener("online", () => { if (!socket) { attempt = 0; connect(); } });

  async function refreshSummary() {
    try {
      const response = await fetch(ENDPOINTS.summary, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (response.redirected && new URL(response.url).pathname.startsWith("/accounts/login")) {
        location.href = `/accounts/login/?next=${encodeURIComponent(location.pathname)}`;
        return;
      }
      if (!response.ok) return;
      summary = await response.json();
      refreshKpis();
      tick();
    } catch {
      // The socket's indicator already tells the user the server is unreachable.
    }
  }

  // --- Alerts ------------------------------------------------------------------------------

  const ALERT_TITLES = {
    long_acw: gettext("Long ACW"),
    acw_share: gettext("High ACW share today"),
    team_avg_acw: gettext("Team average ACW above target"),
    too_short_streak: gettext("ACWs repeatedly too short"),
    long_not_ready: gettext("Long not ready"),
    concurrent_acw: gettext("Many agents in ACW at once"),
  };
  const RED_ALERTS = new Set(["long_acw", "concurrent_acw"]);
  // Alerts as reporting.selectors.alert_payload sends them (docs/wall.md): status is open,
  // acknowledged or resolved; a resolved alert leaves the list.
  const alertKey = (alert) => String(alert.id);
  const isClosed = (alert) => alert.status === "resolved";
  const isAcknowledged = (alert) => alert.status === "acknowledged";

  function applyAlert(alert) {
    if (isClosed(alert)) alerts.delete(alertKey(alert));
    else alerts.set(alertKey(alert), alert);
    renderAlerts();
  }

  function renderAlerts() {
    const list = $("#alerts-list");
    const items = [...alerts.values()].sort(
      (a, b) => isAcknowledged(a) - isAcknowledged(b) || (ms(b.opened_at) || 0) - (ms(a.opened_at) || 0),
    );
    list.replaceChildren(...items.map(alertItem));
    const open = items.filter((a) => !isAcknowledged(a)).length;
    $("#alerts-count").textContent = String(items.length);
    $("#alerts-count").classList.toggle("hot", open > 0);
    $("#alerts-empty").hidden = items.length > 0;
    $("#alerts-sub").textContent = items.length
      ? fmt(ngettext("%(count)s unacknowledged", "%(count)s unacknowledged", open), { count: open })
      : gettext("none open");
  }

  function alertItem(alert) {
    const li = document.createElement("li");
    li.className = "alert";
    li.dataset.alert = alertKey(alert);
    li.dataset.severity = RED_ALERTS.has(alert.kind) ? "red" : "warning";
    const acknowledged = isAcknowledged(alert);
    li.dataset.acknowledged = String(acknowledged);
    const title = document.createElement("div");
    title.className = "alert-title";
    title.textContent = ALERT_TITLES[alert.kind] || alert.kind.replaceAll("_", " ");
    const meta = document.createElement("div");
    meta.className = "alert-meta";
    const person = alert.agent ? (agents.get(alert.agent) || {}).name || alert.agent : "";
    const who = [person, alert.team].filter(Boolean).join(" · ");
    const since = ms(alert.opened_at);
    const opened = Number.isNaN(since) ? ""
      : fmt(gettext("since %(time)s"), { time: new Date(since).toLocaleTimeString(LANGUAGE, { hour: "2-digit", minute: "2-digit" }) });
    meta.textContent = [who, opened]
      .filter(Boolean).join(" — ");
    li.append(title, meta);
    if (alert.message) {
      const text = document.createElement("div");
      text.className = "alert-text";
      text.textContent = alert.message;
      li.append(text);
    }
    const foot = document.createElement("div");
    foot.className = "alert-foot";
    const state = document.createElement("span");
    state.className = "muted";
    if (acknowledged) {
      state.textContent = alert.acknowledged_by
        ? fmt(gettext("Acknowledged by %(user)s"), { user: alert.acknowledged_by })
        : gettext("Acknowledged");
    }
    foot.append(state);
    if (!acknowledged && !KIOSK) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "btn btn-sm";
      button.textContent = gettext("Acknowledge");
      button.addEventListener("click", () => acknowledge(alert, button));
      foot.append(button);
    }
    li.append(foot);
    return li;
  }

  async function acknowledge(alert, button) {
    button.disabled = true;
    try {
      const response = await post(`/kpis/alerts/${encodeURIComponent(alert.id)}/ack`, {});
      if (!response.ok) throw new Error(String(response.status));
      applyAlert((await response.json()).alert);
    } catch {
      button.disabled = false;
      button.textContent = gettext("Retry acknowledge");
    }
  }

  // --- Agent dialog and supervisor actions -------------------------------------------------

  let dialogAgent = null;

  function fact(label, value) {
    const dt = document.createElement("dt");
    dt.textContent = label;
    const dd = document.createElement("dd");
    dd.textContent = value;
    return [dt, dd];
  }

  function fillDialog() {
    const agent = agents.get(dialogAgent);
    if (!agent) {
      $("#dlg-sub").textContent = gettext("This agent has left your teams.");
      $("#dlg-end-acw").disabled = true;
      return;
    }
    const t = now();
    $("#dlg-name").textContent = agent.name;
    $("#dlg-sub").textContent = `${agent.agent} · ${agent.team}`;
    const facts = [
      ...fact(gettext("State"), stateWord(agent)),
      ...fact(gettext("In state for"), agent.since ? clock((t - ms(agent.since)) / 1000) : "–"),
    ];
    if (agent.channel) facts.push(...fact(gettext("Channel"), CHANNEL_WORD[agent.channel] || agent.channel));
    if (agent.interaction_id) facts.push(...fact(gettext("Interaction"), agent.interaction_id));
    if (agent.state === "acw") {
      facts.push(...fact(gettext("ACW deadline"), agent.acw_deadline
        ? new Date(ms(agent.acw_deadline)).toLocaleTimeString(LANGUAGE) : gettext("none (until the agent ends it)")));
      facts.push(...fact(gettext("Extensions"), String(agent.acw_extensions || 0)));
    }
    $("#dlg-facts").replaceChildren(...facts);
    $("#dlg-end-acw").disabled = agent.state !== "acw";
  }

  function openDialog(id) {
    if (KIOSK) return;
    dialogAgent = id;
    const msg = $("#dlg-msg");
    msg.textContent = "";
    msg.dataset.kind = "";
    fillDialog();
    if (!dialog.open) dialog.showModal();
  }

  function post(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken, Accept: "application/json" },
      body: JSON.stringify(body),
    });
  }

  $("#dlg-end-acw").addEventListener("click", async () => {
    const button = $("#dlg-end-acw");
    const msg = $("#dlg-msg");
    button.disabled = true;
    msg.dataset.kind = "";
    msg.textContent = gettext("Ending ACW…");
    try {
      const response = await post(`/wall/end-acw/${encodeURIComponent(dialogAgent)}`, {});
      const body = await response.json().catch(() => ({}));
      if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
      msg.dataset.kind = "ok";
      msg.textContent = gettext("ACW ended by you; the agent is available.");
    } catch (error) {
      msg.dataset.kind = "error";
      msg.textContent = fmt(gettext("Could not end ACW: %(error)s"), { error: error.message });
      fillDialog();
    }
  });

  grid.addEventListener("click", (event) => {
    const tile = event.target.closest(".tile");
    if (tile) openDialog(tile.dataset.agent);
  });
  grid.addEventListener("keydown", (event) => {
    const tile = event.target.closest(".tile");
    if (tile && (event.key === "Enter" || event.key === " ")) {
      event.preventDefault();
      openDialog(tile.dataset.agent);
    }
  });

  // --- Controls ----------------------------------------------------------------------------

  function save() {
    if (KIOSK) return;
    localStorage.setItem(STORE_KEY, JSON.stringify({
      team: view.team, sort: view.sort, density: view.density, states: [...view.states], alertsOpen: view.alertsOpen,
    }));
  }

  function applyView() {
    const teamSelect = $("#f-team");
    if (![...teamSelect.options].some((o) => o.value === view.team)) view.team = "";
    teamSelect.value = view.team;
    $("#f-sort").value = view.sort;
    grid.dataset.density = view.density;
    for (const button of document.querySelectorAll(".segmented button")) {
      button.setAttribute("aria-pressed", String(button.dataset.density === view.density));
    }
    for (const button of document.querySelectorAll(".stat-state")) {
      button.setAttribute("aria-pressed", String(view.states.has(button.dataset.state)));
    }
    document.querySelector(".stats").classList.toggle("filtering", view.states.size > 0);
    $("#f-states-summary").textContent = view.states.size
      ? [...view.states].map((s) => STATE_WORD[s] || s).join(", ") : gettext("all (click a counter to filter)");
    $("#f-states-clear").hidden = view.states.size === 0;
    $("#alerts").classList.toggle("collapsed", !view.alertsOpen);
    $("#alerts-toggle").setAttribute("aria-expanded", String(view.alertsOpen));
    orderDirty = true;
    schedule();
  }

  $("#f-team").addEventListener("change", (e) => { view.team = e.target.value; save(); applyView(); });
  $("#f-sort").addEventListener("change", (e) => { view.sort = e.target.value; save(); applyView(); });
  $("#f-search").addEventListener("input", (e) => {
    view.search = e.target.value.trim().toLowerCase();
    applyView();
  });
  $("#f-states-clear").addEventListener("click", () => { view.states.clear(); save(); applyView(); });
  for (const button of document.querySelectorAll(".stat-state")) {
    button.addEventListener("click", () => {
      const state = button.dataset.state;
      if (view.states.has(state)) view.states.delete(state);
      else view.states.add(state);
      save();
      applyView();
    });
  }
  for (const button of document.querySelectorAll(".segmented button")) {
    button.addEventListener("click", () => {
      view.density = button.dataset.density;
      save();
      for (const [id, tile] of tiles) {
        const agent = agents.get(id);
        if (agent) setText(tile, "state", tile.parts.state, view.density === "compact" ? shortWord(agent) : stateWord(agent));
      }
      applyView();
    });
  }
  $("#alerts-toggle").addEventListener("click", () => { view.alertsOpen = !view.alertsOpen; save(); applyView(); });

  // --- Kiosk: a screen on the floor ---------------------------------------------------------

  // ?rotate=30 shows one team after the other, 30 s each (at least 5 s); ?density=compact as on
  // any wall. The full-screen button hides itself once the screen is full.
  function startKiosk(params) {
    const label = $("#kiosk-team");
    const teams = [...$("#f-team").options].map((o) => o.value).filter(Boolean);
    const rotate = Number(params.get("rotate"));
    label.textContent = gettext("All teams");
    if (rotate > 0 && teams.length > 1) {
      let index = -1;
      const next = () => {
        index = (index + 1) % teams.length;
        view.team = teams[index];
        label.textContent = view.team;
        applyView();
      };
      next();
      setInterval(next, Math.max(5, rotate) * 1000);
    }
    const full = $("#kiosk-fullscreen");
    const showFull = () => { full.hidden = Boolean(document.fullscreenElement) || !document.fullscreenEnabled; };
    full.addEventListener("click", () => document.documentElement.requestFullscreen().catch(() => {}));
    document.addEventListener("fullscreenchange", showFull);
    showFull();
  }

  // --- Start -------------------------------------------------------------------------------

  const params = new URLSearchParams(location.search);
  if (params.get("density")) view.density = params.get("density");
  if (params.has("alerts")) view.alertsOpen = params.get("alerts") !== "0";
  if (KIOSK) startKiosk(params);
  applyView();
  refreshKpis();
  renderAlerts();
  connect();
  setInterval(tick, 1000);
  setInterval(refreshSummary, SUMMARY_EVERY_MS);
})();
