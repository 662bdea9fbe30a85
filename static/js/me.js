// The agent's wrap-up page: state, ACW countdown, checklist, wrap-up code, Ready and Extend.
// It polls /me/state (agent users do not use the wall's socket): every 2 s while the page is
// visible, every 15 s while it is hidden behind the agent's CRM, and at once when it comes back
// into view. Ready and Extend post events through the same ingestion path as the telephony, so
// the wall sees them at once. Each checklist tick, the code and the note are saved as they
// change (/me/wrap-up), so a timeout records them; under a strict policy Ready stays disabled,
// with a countdown, until the deadline.
"use strict";

(() => {
  const POLL_VISIBLE_MS = 2000;
  const POLL_HIDDEN_MS = 15000;
  const $ = (sel) => document.querySelector(sel);
  const csrfToken = document.querySelector("input[name=csrfmiddlewaretoken]").value;
  // The states and channels come from the page (the server's model choices), with their labels.
  const VOCABULARY = JSON.parse($("#vocabulary").textContent);
  const WORDS = Object.fromEntries(VOCABULARY.states.map((s) => [s.value, s.label]));
  const CHANNELS = Object.fromEntries(VOCABULARY.channels.map((c) => [c.value, c.label]));
  // Words come from the JavaScript catalog (/jsi18n/, docs/i18n.md) in the page's language.
  const fmt = (text, values) => interpolate(text, values, true);
  const interactionWord = (channel) => (CHANNELS[channel]
    ? fmt(gettext("%(channel)s interaction"), { channel: CHANNELS[channel].toLowerCase() })
    : gettext("interaction"));

  // Words the server translated (data attributes of the form), with their placeholders.
  const TEXT = $("#me-form").dataset;
  let current = JSON.parse($("#me-initial").textContent);
  let acwKey = null; // resets the form when a new ACW starts

  const ms = (iso) => (iso ? Date.parse(iso) : NaN);
  function clock(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    const m = Math.floor(s / 60);
    return `${m}:${String(s % 60).padStart(2, "0")}`;
  }

  function message(text, kind) {
    const node = $("#me-msg");
    node.textContent = text;
    node.dataset.kind = kind || "";
  }

  function render() {
    const { agent, policy } = current;
    const box = $("#me-state");
    box.dataset.state = agent.state;
    $("#me-word").textContent = agent.state === "not_ready" && agent.reason
      ? fmt(gettext("Not ready · %(reason)s"), { reason: agent.reason }) : WORDS[agent.state] || agent.state;
    let sub = "";
    if (agent.state === "on_interaction") {
      sub = fmt(gettext("Your %(interaction)s %(id)s"), { interaction: interactionWord(agent.channel), id: agent.interaction_id });
    }
    if (agent.state === "acw") {
      sub = agent.acw_deadline
        ? fmt(gettext("Wrap up your %(interaction)s; you become available automatically at the deadline."),
          { interaction: interactionWord(agent.channel) })
        : gettext("Wrap up, then press Ready.");
      if (agent.acw_extensions) sub += " " + fmt(gettext("Extended %(count)s×."), { count: agent.acw_extensions });
    }
    $("#me-sub").textContent = sub;

    const inAcw = agent.state === "acw";
    $("#me-form").hidden = !inAcw;
    $("#me-idle").hidden = inAcw;
    $("#code-required").hidden = !policy.wrap_up_required;
    const extend = $("#extend");
    extend.hidden = !(inAcw && policy.allow_extension && agent.acw_deadline);
    extend.textContent = fmt(gettext("Extend +%(seconds)s s"), { seconds: policy.extension_step_seconds });
    const key = inAcw ? agent.acw_started_at : null;
    if (key !== acwKey) {
      acwKey = key;
      if (inAcw) {
        $("#me-form").reset();
        restoreWrapUp(current.wrap_up);
        message("");
      }
    }
    tick();
  }

  // What was saved for this ACW (after a reload, or from another tab) shows again.
  function restoreWrapUp(saved) {
    if (!saved) return;
    const ticked = new Set(saved.checklist || []);
    for (const box of document.querySelectorAll("input[name=checklist]")) box.checked = ticked.has(Number(box.value));
    if (saved.wrap_up_code) $("#wrap-up-code").value = saved.wrap_up_code;
    if (saved.note) $("#note").value = saved.note;
  }

  let readyBusy = false;
  function updateReady(t) {
    const button = $("#ready");
    const until = ms(current.ready_from);
    const waiting = current.agent.state === "acw" && until > t;
    button.disabled = readyBusy || waiting;
    button.textContent = waiting
      ? TEXT.readyIn.replace("%(time)s", clock(Math.ceil((until - t) / 1000)))
      : TEXT.ready;
    $("#strict-note").hidden = !waiting;
  }

  function tick() {
    const { agent } = current;
    const t = Date.now();
    const value = $("#me-clock-value");
    const label = $("#me-clock-label");
    const clockBox = $("#me-clock");
    const progress = $("#me-progress");
    let level = "";
    if (agent.state === "acw" && agent.acw_deadline) {
      const deadline = ms(agent.acw_deadline);
      const started = ms(agent.acw_started_at);
      const remaining = (deadline - t) / 1000;
      value.textContent = remaining >= 0 ? clock(Math.ceil(remaining)) : `+${clock(-remaining)}`;
      label.textContent = remaining >= 0 ? gettext("left in after-call work") : gettext("past the deadline");
      // The colour points come with the state, from the server (the same as on the wall).
      if (agent.acw_overrun || t >= ms(agent.acw_red_at)) level = "red";
      else if (t >= ms(agent.acw_amber_at)) level = "amber";
      progress.hidden = false;
      progress.dataset.level = level;
      progress.firstElementChild.style.width = `${Math.min(100, Math.max(0, ((t - started) / (deadline - started)) * 100))}%`;
    } else {
      progress.hidden = true;
      value.textContent = agent.since ? clock((t - ms(agent.since)) / 1000) : "–";
      label.textContent = gettext("in this state");
    }
    clockBox.dataset.level = level;
    updateReady(t);
  }

  let pollTimer = 0;
  function schedulePoll() {
    clearTimeout(pollTimer);
    pollTimer = setTimeout(poll, document.hidden ? POLL_HIDDEN_MS : POLL_VISIBLE_MS);
  }

  async function poll() {
    try {
      const response = await fetch("/me/state", { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (response.ok) {
        current = await response.json();
        render();
      }
    } catch {
      // Try again at the next poll.
    }
    schedulePoll();
  }

  async function post(url, body) {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken, Accept: "application/json" },
      body: JSON.stringify(body),
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
    return data;
  }

  $("#me-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    const code = $("#wrap-up-code").value;
    if (current.policy.wrap_up_required && !code) {
      message(gettext("Pick a wrap-up code first: your team requires one."), "error");
      $("#wrap-up-code").focus();
      return;
    }
    const checklist = ticked();
    readyBusy = true;
    updateReady(Date.now());
    try {
      const data = await post("/me/ready", { wrap_up_code: code, note: $("#note").value, checklist });
      current = { ...current, agent: data.agent };
      render();
      message(gettext("Done — you are available."), "ok");
    } catch (error) {
      message(fmt(gettext("Could not finish: %(error)s"), { error: error.message }), "error");
    } finally {
      readyBusy = false;
      updateReady(Date.now());
    }
  });

  function ticked() {
    return [...document.querySelectorAll("input[name=checklist]:checked")].map((box) => Number(box.value));
  }

  // Saves are chained, so they reach the server in the order the agent made them.
  let saving = Promise.resolve();
  function save(fields) {
    if (current.agent.state !== "acw") return;
    saving = saving.then(async () => {
      try {
        const data = await post("/me/wrap-up", fields);
        current = { ...current, agent: data.agent };
        message(TEXT.saved, "ok");
      } catch (error) {
        message(TEXT.notSaved.replace("%(error)s", error.message), "error");
      }
    });
  }

  for (const box of document.querySelectorAll("input[name=checklist]")) {
    box.addEventListener("change", () => save({ checklist: ticked() }));
  }
  $("#wrap-up-code").addEventListener("change", (event) => save({ wrap_up_code: event.target.value }));
  $("#note").addEventListener("change", (event) => save({ note: event.target.value }));

  $("#extend").addEventListener("click", async () => {
    const button = $("#extend");
    button.disabled = true;
    try {
      const data = await post("/me/extend", {});
      current = { ...current, agent: data.agent };
      render();
      message(gettext("Extended."), "ok");
    } catch (error) {
      message(fmt(gettext("Could not extend: %(error)s"), { error: error.message }), "error");
    } finally {
      button.disabled = false;
    }
  });

  document.addEventListener("visibilitychange", () => { if (!document.hidden) poll(); });
  render();
  setInterval(tick, 1000);
  schedulePoll();
})();
