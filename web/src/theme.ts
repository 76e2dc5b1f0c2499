// Light and dark: the system's choice (prefers-color-scheme) unless one is picked with the
// header's button, which this browser remembers.

export type Theme = "auto" | "light" | "dark";

const KEY = "parley.theme";
const ORDER: Theme[] = ["auto", "light", "dark"];

export function storedTheme(): Theme {
  try {
    const stored = window.localStorage.getItem(KEY);
    return stored === "light" || stored === "dark" ? stored : "auto";
  } catch {
    return "auto";
  }
}

export function applyTheme(theme: Theme): void {
  if (theme === "auto") delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = theme;
  try {
    if (theme === "auto") window.localStorage.removeItem(KEY);
    else window.localStorage.setItem(KEY, theme);
  } catch {
    // Not remembered (storage refused); in force for this visit.
  }
}

export function nextTheme(theme: Theme): Theme {
  return ORDER[(ORDER.indexOf(theme) + 1) % ORDER.length];
}
