// The tab's title and icon say how much is unread: "(3) Parley", "(3!) Parley" when one of
// them names you or is private, and a dot with the count on the icon.

const BASE_TITLE = "Parley";

function icon(unread: number, mention: boolean): string {
  const colour = mention ? "#d1242f" : "#0a58ca";
  const count = unread > 99 ? "99+" : String(unread);
  const badge =
    unread > 0
      ? `<circle cx="22" cy="10" r="10" fill="${colour}"/>` +
        `<text x="22" y="14.5" font-size="${count.length > 1 ? 10 : 13}" font-family="sans-serif" ` +
        `text-anchor="middle" fill="#fff">${count}</text>`
      : "";
  // Only digits and fixed markup go into it: the icon is built from numbers, never from text.
  const svg =
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">` +
    `<rect x="2" y="6" width="24" height="20" rx="5" fill="#24292f"/>` +
    `<path d="M8 26l0 5 6-5z" fill="#24292f"/>${badge}</svg>`;
  return `data:image/svg+xml,${encodeURIComponent(svg)}`;
}

let shown = "";

export function showBadge(unread: number, mention: boolean): void {
  const title = unread > 0 ? `(${unread}${mention ? "!" : ""}) ${BASE_TITLE}` : BASE_TITLE;
  if (title === shown) return;
  shown = title;
  document.title = title;
  let link = document.querySelector<HTMLLinkElement>("link[rel='icon']");
  if (link === null) {
    link = document.createElement("link");
    link.rel = "icon";
    document.head.append(link);
  }
  link.href = icon(unread, mention);
}
