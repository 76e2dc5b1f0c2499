// A message's text as page elements: plain text nodes, and links for http(s) addresses made
// here element by element. Nothing from the server is ever parsed as HTML.

import { JSX } from "preact";

// Bidi embeddings, overrides and isolates can make a line read differently from what it is
// (a file "gnp.exe" shown as "exe.png"): they show as U+FFFD, as in the terminal client.
const BIDI_CONTROLS = /[\u202a-\u202e\u2066-\u2069]/g;

export function visible(text: string): string {
  return text.replace(BIDI_CONTROLS, "\ufffd");
}

// http and https addresses only: "javascript:" and the like stay text.
const ADDRESS = /\bhttps?:\/\/[^\s<>"]+/gi;
// Punctuation that usually ends the sentence, not the address.
const TRAILING = /[.,;:!?'")\]]+$/;

function linkTarget(candidate: string): string | null {
  try {
    const url = new URL(candidate);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

export function RichText({ text }: { text: string }): JSX.Element {
  const shown = visible(text);
  const parts: (string | JSX.Element)[] = [];
  let at = 0;
  for (const match of shown.matchAll(ADDRESS)) {
    const start = match.index ?? 0;
    const address = match[0].replace(TRAILING, "");
    const href = linkTarget(address);
    if (href === null) continue;
    if (start > at) parts.push(shown.slice(at, start));
    parts.push(
      <a href={href} target="_blank" rel="noopener noreferrer nofollow" key={start}>
        {address}
      </a>,
    );
    at = start + address.length;
  }
  if (at < shown.length) parts.push(shown.slice(at));
  // Isolated, so right-to-left text cannot reorder the sender's name or the time around it.
  return <bdi class="text">{parts}</bdi>;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

// Whether ``text`` names ``nick`` as a word of its own, in any case ("ann:", "@Ann", "hi ann!").
export function mentions(text: string, nick: string): boolean {
  if (!nick) return false;
  const word = new RegExp(`(^|[^\\p{L}\\p{N}_-])${escapeRegExp(nick)}($|[^\\p{L}\\p{N}_-])`, "iu");
  return word.test(text);
}
