// The chat protocol (docs/protocol.md) over the server's WebSocket: one frame per text message,
// requests matched to their replies by id, and reconnecting with a growing delay.

export type Frame = { type: string; id?: number; [field: string]: unknown };

export type Status =
  | { kind: "connecting"; attempt: number }
  | { kind: "waiting"; attempt: number; seconds: number }
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
    window.clearTimeout(this.timer);
    this.socket?.close();
    this.socket = null;
    this.failPending(reason);
    this.onStatus({ kind: "closed", reason });
  }

  request(frame: Omit<Frame, "id">): Promise<Frame> {
    const socket = this.socket;
    if (socket === null || socket.readyState !== WebSocket.OPEN) {
      return Promise.reject(new RequestError("not-connected", "Not connected; wait for the reconnect."));
    }
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
      this.failPending("The connection was lost.");
      if (this.stopped) return;
      const seconds = backoffSeconds(this.attempt);
      this.onStatus({ kind: "waiting", attempt: this.attempt, seconds: Math.ceil(seconds) });
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
