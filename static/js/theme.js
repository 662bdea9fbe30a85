// Light or dark: the user's choice (the header's toggle, remembered in this browser), else the
// system's (prefers-color-scheme). Loaded in <head> so the page never flashes the other theme.
"use strict";

(() => {
  const KEY = "acw-theme";
  const root = document.documentElement;
  const system = window.matchMedia("(prefers-color-scheme: light)");
  const stored = () => {
    try { return localStorage.getItem(KEY); } catch { return null; }
  };
  const current = () => stored() || (system.matches ? "light" : "dark");

  function apply() {
    const theme = current();
    root.dataset.theme = theme;
    const button = document.getElementById("theme-toggle");
    if (button) button.setAttribute("aria-pressed", String(theme === "light"));
  }

  apply();
  system.addEventListener("change", apply);
  document.addEventListener("DOMContentLoaded", () => {
    apply();
    const button = document.getElementById("theme-toggle");
    if (!button) return;
    button.addEventListener("click", () => {
      try { localStorage.setItem(KEY, current() === "light" ? "dark" : "light"); } catch { /* private mode */ }
      apply();
    });
  });
})();
