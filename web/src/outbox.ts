// Messages on their way to the server: kept while offline, sent one at a time in the order they
// were typed. Each keeps its msg_id across retries, so a send that reached the server before the
// connection dropped is answered "duplicate" and stored once. What waits is also kept in the
// tab's sessionStorage, so that a reload (or a tab the browser discarded) sends it still.

export type Outgoing = { msgId: string; to: string; text: string };

// What became of one attempt: gone to the server, refused for good, or to try again later
// (offline, or the server asked to slow down).
export type Attempt = "sent" | "refused" | "later";

export class Outbox {
  private queue: Outgoing[] = [];
  private running = false;
  private again = false; // flush() was called while running: look once more before stopping

  constructor(
    private readonly sendOne: (item: Outgoing) => Promise<Attempt>,
    private readonly changed: () => void,
    // Called with what waits after every change, to be kept.
    private readonly keep: (waiting: readonly Outgoing[]) => void = () => {},
  ) {}

  get waiting(): readonly Outgoing[] {
    return this.queue;
  }

  // Leaving (quit, logout): what waits was typed by this login, and goes with it.
  clear(): void {
    this.queue = [];
    this.update();
  }

  add(item: Outgoing): void {
    this.queue.push(item);
    this.update();
    void this.flush();
  }

  private update(): void {
    this.keep(this.queue);
    this.changed();
  }

  // Sends what waits, oldest first; stops at the first that must wait, so none overtakes it.
  async flush(): Promise<void> {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    try {
      do {
        this.again = false;
        while (this.queue.length > 0) {
          const outcome = await this.sendOne(this.queue[0]);
          if (outcome === "later") break;
          this.queue.shift();
          this.update();
        }
      } while (this.again && this.queue.length > 0);
    } finally {
      this.running = false;
    }
  }
}

const STORED = "parley.outbox.";

// What waited to be sent by `nick` in this tab, as kept by `keepOutbox`; anything that is not
// a well-formed message is left out.
export function storedOutbox(nick: string): Outgoing[] {
  try {
    const stored: unknown = JSON.parse(window.sessionStorage.getItem(STORED + nick.toLowerCase()) ?? "[]");
    if (!Array.isArray(stored)) return [];
    return stored.filter(
      (item: unknown): item is Outgoing =>
        typeof item === "object" &&
        item !== null &&
        typeof (item as Outgoing).msgId === "string" &&
        typeof (item as Outgoing).to === "string" &&
        typeof (item as Outgoing).text === "string",
    );
  } catch {
    return []; // unreadable: nothing to send
  }
}

export function keepOutbox(nick: string, waiting: readonly Outgoing[]): void {
  try {
    if (waiting.length === 0) window.sessionStorage.removeItem(STORED + nick.toLowerCase());
    else window.sessionStorage.setItem(STORED + nick.toLowerCase(), JSON.stringify(waiting));
  } catch {
    // Storage refused or full: kept in this page only, as before.
  }
}
