// The chat protocol (docs/protocol.md) over the server's WebSocket: one frame per text message,
// requests matched to their replies by id, and reconnecting with a growing delay.

export type Frame = { type: string; id?: number; [field: string]: unknown };

export type Status =
  | { kind: "connecting"; attempt: number }
  | { kind: "waiting"; attempt: number; seconds: number; moving: boolean }
  | { kind: "moving" }
  | { kind: "open" }
  | { kind: "closed"; reason: string };

type Pending = { resolve: (reply: Frame) => void };

export class RequestError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

// Delays between attempts, in seconds: quick at first, then at most every 10 s. Each is drawn
// between half and all of that, so that the pages a server restart cut off do not all come
// back in the same instant.
const BACKOFF = [1, 2, 4, 8, 10];

const sleep = (ms: number) => new Promise<void>((done) => window.setTimeout(done, ms));

export function backoffSeconds(attempt: number, random: () => number = Math.random): number {
  const most = BACKOFF[Math.min(Math.max(attempt, 1), BACKOFF.length) - 1];
  return most * (0.5 + random() / 2);
}

export class Connection {
  private socket: WebSocket | null = null;
  private nextId = 1;
  private pending = new Map<number, Pending>();
  private attempt = 0;
  private timer: number | undefined;
  private stopped = true;
  // The server said it is going away: nothing new is sent, and the socket is left for another.
  private moving = false;

  constructor(
    private readonly url: string,
    private readonly onEvent: (frame: Frame) => void,
    private readonly onStatus: (status: Status) => void,
    // Called each time a socket opens: says hello and logs in again.
    private readonly onOpen: () => Promise<void>,
  ) {}

  start(): void {
    this.stopped = false;
    this.attempt = 0;
    this.open();
  }

  // No more reconnecting: the user left, or the server said not to come back.
  stop(reason: string): void {
    this.stopped = true;
    this.moving = false;
    window.clearTimeout(this.timer);
    this.socket?.close();
    this.socket = null;
    this.failPending(reason);
    this.onStatus({ kind: "closed", reason });
  }

  request(frame: Omit<Frame, "id">): Promise<Frame> {
    const socket = this.socket;
    if (socket === null || socket.readyState !== WebSocket.OPEN || this.moving) {
      return Promise.reject(new RequestError("not-connected", "Not connected; wait for the reconnect."));
    }
    return this.send(socket, frame);
  }

  // The server is going away (`going-away`): send nothing new, let the requests already sent
  // be answered (for up to half the time it gives), leave with `bye`, and connect again after
  // the usual drawn wait: the address leads to another server, where the login resumes.
  async moveOn(seconds: number): Promise<void> {
    const socket = this.socket;
    if (socket === null || this.moving) return;
    this.moving = true;
    this.onStatus({ kind: "moving" });
    const half = Number.isFinite(seconds) ? Math.max(0, seconds / 2) * 1000 : 0;
    const deadline = Date.now() + half;
    while (this.pending.size > 0 && this.socket === socket && Date.now() < deadline) await sleep(50);
    if (this.socket !== socket) return; // gone already: reconnecting as after any loss
    const bye = this.send(socket, { type: "bye" }).catch(() => undefined);
    await Promise.race([bye, sleep(Math.max(1000, half))]);
    if (this.socket === socket) socket.close();
  }

  private send(socket: WebSocket, frame: Omit<Frame, "id">): Promise<Frame> {
    const id = this.nextId++;
    return new Promise<Frame>((resolve, reject) => {
      this.pending.set(id, {
        resolve: (reply) =>
          reply.type === "error"
            ? reject(new RequestError(String(reply.code), String(reply.message)))
            : resolve(reply),
      });
      socket.send(JSON.stringify({ ...frame, id }));
    });
  }

  private open(): void {
    this.attempt += 1;
    this.onStatus({ kind: "connecting", attempt: this.attempt });
    const socket = new WebSocket(this.url);
    this.socket = socket;
    socket.onopen = () => {
      this.onOpen().then(
        () => {
          this.attempt = 0;
          this.onStatus({ kind: "open" });
        },
        (error: unknown) => {
          if (!(error instanceof RequestError) || error.code === "not-connected") return;
          if (error.code === "retry") {
            socket.close(); // the next attempt comes after the usual wait
            return;
          }
          this.stop(error.message);
        },
      );
    };
    socket.onmessage = (message: MessageEvent) => {
      if (typeof message.data !== "string") return;
      let frame: Frame;
      try {
        frame = JSON.parse(message.data) as Frame;
      } catch {
        return;
      }
      if (typeof frame.id === "number" && frame.type !== "message") {
        const waiting = this.pending.get(frame.id);
        if (waiting !== undefined) {
          this.pending.delete(frame.id);
          waiting.resolve(frame);
          return;
        }
      }
      if (frame.type === "closing" && NO_RETRY.has(String(frame.code))) {
        this.stop(String(frame.message));
        return;
      }
      this.onEvent(frame);
    };
    socket.onclose = () => {
      if (this.socket !== socket) return;
      this.socket = null;
      const moving = this.moving;
      this.moving = false;
      this.failPending(moving ? "Moved to another server." : "The connection was lost.");
      if (this.stopped) return;
      const seconds = backoffSeconds(this.attempt);
      this.onStatus({ kind: "waiting", attempt: this.attempt, seconds: Math.ceil(seconds), moving });
      this.timer = window.setTimeout(() => this.open(), seconds * 1000);
    };
  }

  private failPending(reason: string): void {
    const replies = [...this.pending.values()];
    this.pending.clear();
    for (const waiting of replies) {
      waiting.resolve({ type: "error", code: "not-connected", message: reason });
    }
  }
}

// Closing codes after which connecting again would be refused the same way.
const NO_RETRY = new Set(["unsupported-version", "revoked"]);

export function socketUrl(location: Location): string {
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
}
