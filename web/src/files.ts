// Sharing and fetching files over HTTPS (docs/web.md, "Files"): the chat's share and get give
// a one-time token; the bytes go to or come from /files/<token> on this server.

import { Chat } from "./chat";

export type FileNotice = { id: string; name: string; size: number; sha256: string };

// The file a "/file {...}" announcement from the server names, or null for any other text.
export function fileNotice(text: string): FileNotice | null {
  if (!text.startsWith("/file ")) return null;
  try {
    const notice = JSON.parse(text.slice(6)) as Record<string, unknown>;
    const { id, name, size, sha256 } = notice;
    if (typeof id === "string" && /^[0-9a-f]{32}$/.test(id) && typeof name === "string" && typeof size === "number") {
      return { id, name, size, sha256: typeof sha256 === "string" ? sha256 : "" };
    }
  } catch {
    // Not an announcement after all: shown as the text it is.
  }
  return null;
}

export function humanSize(bytes: number): string {
  const units = ["bytes", "KiB", "MiB", "GiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${bytes} bytes` : `${value.toFixed(1)} ${units[unit]}`;
}

function hex(buffer: ArrayBuffer): string {
  return [...new Uint8Array(buffer)].map((byte) => byte.toString(16).padStart(2, "0")).join("");
}

export type Progress = (sent: number, total: number) => void;

// Share `file` with a room or user: its SHA-256, a share request, then the bytes the server
// does not hold yet (an interrupted upload of the same file goes on where it stopped).
export async function shareFile(chat: Chat, to: string, file: File, progress: Progress): Promise<string> {
  const sha256 = hex(await crypto.subtle.digest("SHA-256", await file.arrayBuffer()));
  const slot = await chat.request({ type: "share", to, name: file.name || "pasted file", size: file.size, sha256 });
  const offset = Number(slot.offset);
  progress(offset, file.size);
  await put(`/files/${encodeURIComponent(String(slot.token))}`, file.slice(offset), offset, file.size, progress);
  return String(slot.name);
}

// XMLHttpRequest, not fetch: only it reports an upload's progress.
function put(url: string, body: Blob, offset: number, size: number, progress: Progress): Promise<void> {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("PUT", url);
    if (offset > 0) request.setRequestHeader("Content-Range", `bytes ${offset}-${size - 1}/${size}`);
    request.upload.onprogress = (event) => progress(offset + event.loaded, size);
    request.onload = () => {
      if (request.status === 200) {
        progress(size, size);
        resolve();
        return;
      }
      let message = `The server answered ${request.status}.`;
      try {
        const reply = JSON.parse(request.responseText) as { message?: unknown };
        if (typeof reply.message === "string") message = reply.message;
      } catch {
        // The status says it.
      }
      reject(new Error(message));
    };
    request.onerror = () => reject(new Error("The upload was cut off; share the file again to go on from where it stopped."));
    request.send(body);
  });
}

// Fetch a file: a one-time token from the chat, then the browser's own download of
// /files/<token> (an attachment: saved, never shown as a page).
export async function downloadFile(chat: Chat, fileId: string): Promise<void> {
  const ticket = await chat.request({ type: "get", file_id: fileId });
  const link = document.createElement("a");
  link.href = `/files/${encodeURIComponent(String(ticket.token))}`;
  link.download = String(ticket.name);
  link.rel = "noopener";
  document.body.append(link);
  link.click();
  link.remove();
}
