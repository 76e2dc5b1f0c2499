// Messages on their way to the server: kept while offline, sent one at a time in the order they
// were typed. Each keeps its msg_id across retries, so a send that reached the server before the
// connection dropped is answered "duplicate" and stored once.

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
  ) {}

  get waiting(): readonly Outgoing[] {
    return this.queue;
  }

  // Leaving (quit, logout): what waits was typed by this login, and goes with it.
  clear(): void {
    this.queue = [];
    this.changed();
  }

  add(item: Outgoing): void {
    this.queue.push(item);
    this.changed();
    void this.flush();
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
          this.changed();
        }
      } while (this.again && this.queue.length > 0);
    } finally {
      this.running = false;
    }
  }
}
