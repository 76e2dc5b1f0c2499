// Files in the page: drop or paste anywhere to share with the open conversation (with a progress
// bar per upload), a button and file picker for the keyboard, download buttons on
// announcements and on the /files list. The tray (uploads, the /files list, the button) is a
// layer of its own over the page. Names come from other users: they go into the page as text
// only, isolated (<bdi>) so that right-to-left marks cannot reorder what is around them.

import { render } from "preact";
import { useEffect, useReducer, useRef, useState } from "preact/hooks";
import { Chat, Line } from "./chat";
import { FileNotice, downloadFile, humanSize, shareFile } from "./files";
import "./files.css";

type Upload = { key: number; name: string; to: string; sent: number; total: number; error: string; done: boolean };

// What is being sent, and what was: kept for the page's life, shown under the conversation.
class Uploads {
  items: Upload[] = [];
  private next = 1;
  private listeners = new Set<() => void>();

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  start(chat: Chat, to: string, file: File): void {
    const upload: Upload = { key: this.next++, name: file.name || "pasted file", to, sent: 0, total: file.size, error: "", done: false };
    this.items = [...this.items, upload];
    this.changed();
    shareFile(chat, to, file, (sent, total) => {
      upload.sent = sent;
      upload.total = total;
      this.changed();
    }).then(
      (name) => {
        upload.name = name;
        upload.done = true;
        this.changed();
      },
      (error: Error) => {
        upload.error = error.message;
        this.changed();
      },
    );
  }

  dismiss(key: number): void {
    this.items = this.items.filter((item) => item.key !== key);
    this.changed();
  }

  private changed(): void {
    this.items = [...this.items];
    for (const listener of this.listeners) listener();
  }
}

export const uploads = new Uploads();

export type SharedFile = { file_id: string; name: string; size: number; sender: string; to: string };

// The files of the last /files, shown until closed.
export const shelf = {
  files: null as SharedFile[] | null,
  listeners: new Set<() => void>(),
  show(files: SharedFile[] | null): void {
    shelf.files = files;
    for (const listener of shelf.listeners) listener();
  },
};

function useStore(subscribe: (listener: () => void) => () => void): void {
  const [, redraw] = useReducer((n: number, _: undefined) => n + 1, 0);
  useEffect(() => subscribe(() => redraw(undefined)), [subscribe]);
}

function shareAll(chat: Chat, to: string, files: FileList | null | undefined): boolean {
  if (!files || files.length === 0) return false;
  for (const file of Array.from(files)) uploads.start(chat, to, file);
  return true;
}

function ShareButton({ chat, to }: { chat: Chat; to: string }) {
  const input = useRef<HTMLInputElement>(null);
  return (
    <>
      <input
        ref={input}
        type="file"
        multiple
        class="visually-hidden"
        tabIndex={-1}
        aria-label={`Share files with ${to}`}
        onChange={(event) => {
          shareAll(chat, to, event.currentTarget.files);
          event.currentTarget.value = "";
        }}
      />
      <button type="button" class="share" onClick={() => input.current?.click()} title="Share a file (or drop or paste one)">
        Share a file
      </button>
    </>
  );
}

function UploadList() {
  useStore((listener) => uploads.subscribe(listener));
  if (uploads.items.length === 0) return null;
  return (
    <ul class="uploads" aria-label="Uploads">
      {uploads.items.map((upload) => (
        <li key={upload.key} class={upload.error ? "upload error" : upload.done ? "upload done" : "upload"}>
          <bdi class="file-name">{upload.name}</bdi> to <bdi>{upload.to}</bdi>{" "}
          <progress max={Math.max(upload.total, 1)} value={upload.total ? upload.sent : 1} aria-label={`Upload of ${upload.name}`} />{" "}
          <span class="upload-state" aria-live="polite">
            {upload.error ? upload.error : upload.done ? "Sent" : `${humanSize(upload.sent)} of ${humanSize(upload.total)}`}
          </span>
          {upload.error || upload.done ? (
            <button type="button" onClick={() => uploads.dismiss(upload.key)} aria-label={`Dismiss ${upload.name}`}>
              ×
            </button>
          ) : null}
        </li>
      ))}
    </ul>
  );
}

function DownloadButton({ chat, fileId, name }: { chat: Chat; fileId: string; name: string }) {
  const [error, setError] = useState("");
  return (
    <>
      <button
        type="button"
        class="download"
        onClick={() => {
          setError("");
          downloadFile(chat, fileId).catch((e: Error) => setError(e.message));
        }}
      >
        <bdi class="file-name">{name}</bdi>
      </button>
      {error ? (
        <span class="error" role="alert">
          {" "}
          {error}
        </span>
      ) : null}
    </>
  );
}

// The page's one chat, for the announcements' download buttons (set by attachFiles).
let pageChat: Chat | null = null;

// A line announcing a shared file: who, and a button that downloads it.
export function FileNoticeLine({ line, notice }: { line: Extract<Line, { kind: "message" }>; notice: FileNotice }) {
  const time = new Date(line.ts).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  return (
    <li class="message file" data-key={line.key}>
      <time>{time}</time> <bdi class="sender">{line.sender}</bdi> shared{" "}
      {pageChat ? <DownloadButton chat={pageChat} fileId={notice.id} name={notice.name} /> : <bdi>{notice.name}</bdi>} (
      {humanSize(notice.size)})
    </li>
  );
}

function SharedFiles({ chat }: { chat: Chat }) {
  useStore((listener) => {
    shelf.listeners.add(listener);
    return () => shelf.listeners.delete(listener);
  });
  if (shelf.files === null) return null;
  return (
    <section class="shared-files" aria-label="Files shared with you">
      <h3>Files ({shelf.files.length})</h3>
      <button type="button" class="close" onClick={() => shelf.show(null)} aria-label="Close the file list">
        ×
      </button>
      {shelf.files.length === 0 ? <p>No files.</p> : null}
      <ul>
        {shelf.files.map((file) => (
          <li key={file.file_id}>
            <DownloadButton chat={chat} fileId={file.file_id} name={file.name} /> ({humanSize(file.size)}) from <bdi>{file.sender}</bdi> in{" "}
            <bdi>{file.to}</bdi>
          </li>
        ))}
      </ul>
    </section>
  );
}

// The open conversation's name, or "" (nothing to share with).
function openConversation(chat: Chat): string {
  return chat.nick ? (chat.conversations.get(chat.current)?.name ?? "") : "";
}

function FileLayer({ chat }: { chat: Chat }) {
  useStore((listener) => chat.subscribe(listener));
  const [over, setOver] = useState(false);
  const to = openConversation(chat);
  useEffect(() => {
    // Anywhere on the page: a drop or a paste of files shares them with the open conversation.
    const hasFiles = (event: DragEvent) => event.dataTransfer?.types.includes("Files") ?? false;
    const dragOver = (event: DragEvent) => {
      if (!hasFiles(event) || !openConversation(chat)) return;
      event.preventDefault();
      if (event.dataTransfer) event.dataTransfer.dropEffect = "copy";
      setOver(true);
    };
    const dragLeave = (event: DragEvent) => {
      if (event.relatedTarget === null) setOver(false);
    };
    const drop = (event: DragEvent) => {
      setOver(false);
      const target = openConversation(chat);
      if (target && shareAll(chat, target, event.dataTransfer?.files)) event.preventDefault();
    };
    const paste = (event: ClipboardEvent) => {
      const target = openConversation(chat);
      if (target && shareAll(chat, target, event.clipboardData?.files)) event.preventDefault();
    };
    window.addEventListener("dragover", dragOver);
    window.addEventListener("dragleave", dragLeave);
    window.addEventListener("drop", drop);
    window.addEventListener("paste", paste);
    return () => {
      window.removeEventListener("dragover", dragOver);
      window.removeEventListener("dragleave", dragLeave);
      window.removeEventListener("drop", drop);
      window.removeEventListener("paste", paste);
    };
  }, [chat]);
  if (!to) return null;
  return (
    <>
      {over ? (
        <p class="drop-hint" aria-hidden="true">
          Drop to share with <bdi>{to}</bdi>
        </p>
      ) : null}
      <section class="file-tray" aria-label="Files">
        <UploadList />
        <SharedFiles chat={chat} />
        <ShareButton chat={chat} to={to} />
      </section>
    </>
  );
}

// Files for this page's chat: the tray, drops and pastes, and the announcements' buttons.
export function attachFiles(chat: Chat): void {
  pageChat = chat;
  const layer = document.createElement("div");
  layer.id = "files";
  document.body.append(layer);
  render(<FileLayer chat={chat} />, layer);
}
