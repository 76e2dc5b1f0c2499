// Files in the page: drop or paste to share (with a progress bar per upload), a button and
// file picker for the keyboard, download buttons on announcements and on the /files list.
// Names come from other users: they go into the page as text only, isolated (<bdi>) so that
// right-to-left marks cannot reorder what is around them.

import { ComponentChildren } from "preact";
import { useEffect, useReducer, useRef, useState } from "preact/hooks";
import { Chat } from "./chat";
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

// Drop files anywhere on the conversation, or paste them into it, to share them there.
export function FileDropZone({ chat, to, children }: { chat: Chat; to: string; children: ComponentChildren }) {
  const [over, setOver] = useState(false);
  return (
    <div
      class={over ? "drop-zone drop-over" : "drop-zone"}
      data-drop-target={to}
      onDragOver={(event) => {
        if (!event.dataTransfer?.types.includes("Files")) return;
        event.preventDefault();
        event.dataTransfer.dropEffect = "copy";
        setOver(true);
      }}
      onDragLeave={() => setOver(false)}
      onDrop={(event) => {
        setOver(false);
        if (shareAll(chat, to, event.dataTransfer?.files)) event.preventDefault();
      }}
      onPaste={(event) => {
        if (shareAll(chat, to, event.clipboardData?.files)) event.preventDefault();
      }}
    >
      {children}
      {over ? (
        <p class="drop-hint" aria-hidden="true">
          Drop to share with <bdi>{to}</bdi>
        </p>
      ) : null}
    </div>
  );
}

export function ShareButton({ chat, to }: { chat: Chat; to: string }) {
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

export function UploadList() {
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

// A line announcing a shared file: who, and a button that downloads it.
export function FileNoticeLine({ chat, sender, time, notice }: { chat: Chat; sender: string; time: string; notice: FileNotice }) {
  return (
    <li class="message file">
      <time>{time}</time> <span class="sender">{sender}</span> shared <DownloadButton chat={chat} fileId={notice.id} name={notice.name} /> (
      {humanSize(notice.size)})
    </li>
  );
}

export function SharedFiles({ chat }: { chat: Chat }) {
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
