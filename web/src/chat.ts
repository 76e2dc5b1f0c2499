// What the web client knows: its conversations, their messages and members, and the login.
// Everything from the server is kept as data; the view shows text as text only.

import { Connection, Frame, RequestError, Status, socketUrl } from "./connection";

export type Line =
  | { kind: "message"; key: string; sender: string; text: string; seq: number; ts: number }
  | { kind: "info"; key: string; text: string; error?: boolean };

export type Conversation = {
  name: string; // as the server spells it: "#general", or the other user's name
  room: boolean;
  lines: Line[];
  seqs: Set<number>; // messages already shown: history and live copies come once
  members: string[];
  topic: string;
};

export type Login = { nick: string; password: string };

// A server whose list pages never end is believed this far (a million users in pages of 1,000).
const MOST_PAGES = 1000;

let lineCounter = 0;
const lineKey = (): string => `l${++lineCounter}`;

export function conversationKey(name: string): string {
  return name.toLowerCase();
}

export class Chat {
  status: Status = { kind: "closed", reason: "" };
  nick = "";
  conversations = new Map<string, Conversation>();
  current = "";
  roomList: { room: string; members: number; topic: string }[] = [];
  private login: Login | null = null;
  private token = ""; // a session token from a password login, kept in memory only
  private connection: Connection;
  private listeners = new Set<() => void>();

  constructor(url = socketUrl(window.location)) {
    this.connection = new Connection(
      url,
      (frame) => this.onEvent(frame),
      (status) => {
        this.status = status;
        this.changed();
      },
      () => this.greet(),
    );
  }

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  connect(login: Login): void {
    this.login = login;
    this.token = "";
    this.connection.start();
  }

  request(frame: Omit<Frame, "id">): Promise<Frame> {
    return this.connection.request(frame);
  }

  // A whole list the server sends in pages (who, list, unread): `field` of every page, asked
  // after each page's `next` until it is "" (or does not move on, or after MOST_PAGES). The
  // first reply comes back with every item in `field`.
  async pages(frame: Omit<Frame, "id">, field: string): Promise<Frame> {
    const first = await this.request(frame);
    const items = [...((first[field] as unknown[]) ?? [])];
    let after = typeof first.next === "string" ? first.next : "";
    for (let page = 1; after && page < MOST_PAGES; page++) {
      const reply = await this.request({ ...frame, after });
      items.push(...((reply[field] as unknown[]) ?? []));
      const next = typeof reply.next === "string" ? reply.next : "";
      after = next === after ? "" : next;
    }
    return { ...first, [field]: items, next: "" };
  }

  async quit(): Promise<void> {
    try {
      await this.request({ type: "bye" });
    } catch {
      // Leaving anyway.
    }
    this.connection.stop("You left.");
    this.nick = "";
    this.conversations.clear();
    this.current = "";
    this.changed();
  }

  conversation(name: string): Conversation {
    const key = conversationKey(name);
    let found = this.conversations.get(key);
    if (found === undefined) {
      found = { name, room: name.startsWith("#"), lines: [], seqs: new Set(), members: [], topic: "" };
      this.conversations.set(key, found);
    }
    return found;
  }

  show(name: string): void {
    const conversation = this.conversation(name);
    this.current = conversationKey(name);
    this.changed();
    if (conversation.lines.length === 0 && this.status.kind === "open") {
      void this.loadHistory(conversation.name);
    }
    if (conversation.room) void this.loadMembers(conversation.name);
  }

  info(text: string, error = false, where = this.current): void {
    const conversation = this.conversations.get(where);
    if (conversation === undefined) return;
    conversation.lines = [...conversation.lines, { kind: "info", key: lineKey(), text, error }];
    this.changed();
  }

  async join(room: string): Promise<void> {
    const reply = await this.request({ type: "join", room });
    const name = String(reply.room);
    const conversation = this.conversation(name);
    conversation.topic = String(reply.topic ?? "");
    this.show(name);
  }

  async part(room: string): Promise<void> {
    await this.request({ type: "part", room });
    const key = conversationKey(room);
    this.conversations.delete(key);
    if (this.current === key) {
      this.current = this.conversations.keys().next().value ?? "";
    }
    this.changed();
  }

  async loadRooms(): Promise<void> {
    const reply = await this.request({ type: "rooms" });
    this.roomList = (reply.rooms as { room: string; members: number; topic?: string }[]).map((r) => ({
      room: r.room,
      members: r.members,
      topic: r.topic ?? "",
    }));
    this.changed();
  }

  async loadHistory(name: string, before?: number): Promise<number> {
    const reply = await this.request({ type: "history", to: name, limit: 50, ...(before ? { before } : {}) });
    const messages = (reply.messages as Frame[]) ?? [];
    for (const message of messages) this.addMessage(message);
    return messages.length;
  }

  async loadMembers(room: string): Promise<void> {
    try {
      const reply = await this.pages({ type: "who", room }, "users");
      this.conversation(room).members = reply.users as string[];
      this.changed();
    } catch {
      // Not in it (any more): the list stays as it was.
    }
  }

  async send(to: string, text: string): Promise<void> {
    const reply = await this.request({ type: "send", to, text, msg_id: crypto.randomUUID() });
    if (typeof reply.away === "string") this.info(`${to} is away: ${reply.away}`);
  }

  private async greet(): Promise<void> {
    const login = this.login;
    if (login === null) return;
    await this.request({ type: "hello", versions: [1], client: "parley-web/0.1.0" });
    const credentials = this.token
      ? { token: this.token }
      : login.password
        ? { password: login.password }
        : {};
    const reply = await this.request({ type: "nick", nick: login.nick, ...credentials });
    if (typeof reply.token === "string") {
      // The password is not kept: reconnecting uses the token.
      this.token = reply.token;
      login.password = "";
    }
    this.nick = String(reply.nick);
    const rooms = (reply.rooms as string[] | undefined) ?? [];
    // On a reconnect, guests rejoin the rooms they had open.
    for (const conversation of [...this.conversations.values()]) {
      if (conversation.room && !rooms.some((room) => conversationKey(room) === conversationKey(conversation.name))) {
        try {
          await this.request({ type: "join", room: conversation.name });
        } catch (error) {
          this.info(`Could not rejoin ${conversation.name}: ${(error as Error).message}`, true);
        }
      }
    }
    for (const room of rooms) this.conversation(room);
    if (!this.current && rooms.length > 0) this.current = conversationKey(rooms[0]);
    this.changed();
    // What was said while away (or before the page opened).
    for (const conversation of [...this.conversations.values()]) {
      const last = Math.max(0, ...conversation.seqs);
      if (last > 0) {
        const reply = await this.request({ type: "history", to: conversation.name, after: last, limit: 200 });
        for (const message of reply.messages as Frame[]) this.addMessage(message);
      } else {
        await this.loadHistory(conversation.name);
      }
      if (conversation.room) await this.loadMembers(conversation.name);
    }
  }

  private onEvent(frame: Frame): void {
    switch (frame.type) {
      case "message":
        this.addMessage(frame);
        break;
      case "joined":
      case "left": {
        const room = this.conversations.get(conversationKey(String(frame.room)));
        const nick = String(frame.nick);
        if (nick === this.nick && frame.type === "left") {
          const why = frame.reason ? ` (${String(frame.reason)} by ${String(frame.by)}${frame.message ? `: ${String(frame.message)}` : ""})` : "";
          this.info(`You left ${String(frame.room)}${why}.`, true, conversationKey(String(frame.room)));
        }
        if (room === undefined) break;
        const others = room.members.filter((member) => member !== nick);
        room.members = frame.type === "joined" ? [...others, nick].sort(compareNames) : others;
        if (nick !== this.nick) {
          this.info(frame.type === "joined" ? `${nick} joined.` : `${nick} left.`, false, conversationKey(room.name));
        }
        this.changed();
        break;
      }
      case "topic": {
        const room = this.conversation(String(frame.room));
        room.topic = String(frame.text);
        this.info(`${String(frame.by)} set the topic: ${String(frame.text)}`, false, conversationKey(room.name));
        break;
      }
      case "notice":
        this.info(String(frame.text));
        break;
      case "closing":
        this.info(`Server: ${String(frame.message)}`, true);
        break;
    }
  }

  private addMessage(frame: Frame): void {
    const to = String(frame.to);
    const sender = String(frame.sender);
    const other = to.startsWith("#") ? to : conversationKey(sender) === conversationKey(this.nick) ? to : sender;
    const conversation = this.conversation(other);
    const seq = Number(frame.seq);
    if (conversation.seqs.has(seq)) return;
    conversation.seqs.add(seq);
    const line: Line = { kind: "message", key: lineKey(), sender, text: String(frame.text), seq, ts: Number(frame.ts) };
    // In seq order, whether it came live or from the record.
    const lines = [...conversation.lines];
    let at = lines.length;
    while (at > 0) {
      const before = lines[at - 1];
      if (before.kind === "message" && before.seq < seq) break;
      if (before.kind === "info" && !frame.history) break;
      at -= 1;
    }
    lines.splice(at, 0, line);
    conversation.lines = lines;
    if (!this.current) this.current = conversationKey(other);
    this.changed();
  }

  changed(): void {
    for (const listener of this.listeners) listener();
  }
}

export function compareNames(a: string, b: string): number {
  return a.toLowerCase().localeCompare(b.toLowerCase());
}

export { RequestError };
