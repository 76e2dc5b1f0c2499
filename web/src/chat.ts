// What the web client knows: its conversations, their messages, members and unread counts, the
// outbox and the login. Everything from the server is kept as data; the view shows text as text.

import { Connection, Frame, RequestError, Status, socketUrl } from "./connection";
import { notify } from "./notify";
import { Outbox, Attempt, Outgoing, keepOutbox, storedOutbox } from "./outbox";
import { mentions, visible } from "./richtext";

export type Line =
  | { kind: "message"; key: string; sender: string; text: string; seq: number; ts: number; msgId: string }
  | { kind: "pending"; key: string; sender: string; text: string; msgId: string }
  | { kind: "info"; key: string; text: string; error?: boolean };

export type Conversation = {
  name: string; // as the server spells it: "#general", or the other user's name
  room: boolean;
  lines: Line[];
  seqs: Map<number, string>; // seq -> msg_id of what is shown: history and live copies come once
  members: string[]; // in a quiet room, the first page and the joins since
  namesRead: boolean; // members holds the names the server listed (who), kept up by events
  total: number; // how many are in the room, as the server last counted (room, who, members)
  stateRead: boolean; // topic, total and quiet are the server's (room reply), kept up by events
  latestRead: boolean; // the latest page of history is here or coming (a history read, a join)
  quiet: boolean; // a big room: joins and parts come as periodic `members` summaries
  summary: string; // the last summary, as summaryText says it
  allMembers: boolean; // every page of a quiet room's members was read (asked for)
  topic: string;
  unread: number;
  mentions: number; // unread messages that name you (every unread private message counts)
  readSeq: number; // the read marker: everything up to it has been seen
  olderDone: boolean; // the first message is shown: nothing older to load
  loadingOlder: boolean;
  presence: "online" | "offline" | "unknown"; // the other user, for a private conversation
  away: string;
};

export type Login = { nick: string; password: string };

// A server whose list pages never end is believed this far (a million users in pages of 1,000).
const MOST_PAGES = 1000;
// Said in each conversation whose history is reloaded because the server's history epoch changed.
export const HISTORY_RELOADED = "The server restarted after losing its last messages; history was reloaded.";
// How many messages a page of history asks for (the protocol allows up to 200).
const PAGE = 50;
// Names listed for a quiet room (one the server summarises): one page, until all are asked for.
const QUIET_ROOM_NAMES = 200;
// A quiet room's joins and parts come as counts, not names: the room in view reads its list
// again after a summary, at most this often, and no sooner than the server's first page of
// `who` of a big room (up to a second old) has caught up with the summary.
const MEMBERS_REFRESH_MS = 5000;
const FIRST_PAGE_AGE_MS = 1100;
// Requests the server answers "slow down" (rate-limited) or "try again" (unavailable) are
// retried after 0.5 s, 1 s, 1.5 s...; the bucket refills at 10 requests a second. What the
// user typed is retried only when told to slow down, as the terminal client does.
const RETRIES = 8;
const RETRY_CODES = new Set(["rate-limited", "unavailable", "internal-error"]);
const SLOW_DOWN = new Set(["rate-limited"]);
// A room's names are read once the user has stayed on it this long: clicking through rooms
// reads only the one stopped at (a `who` costs as much as five other requests).
const NAMES_DWELL_MS = 300;
// Below this width (style.css's phone layout) the members panel shows only when opened.
const PHONE_LAYOUT = "(max-width: 40rem)";
// Refusals that say the conversation is not there at all.
const NO_SUCH = new Set(["no-such-user", "no-such-room", "not-in-room"]);

let lineCounter = 0;
const lineKey = (): string => `l${++lineCounter}`;
const sleep = (ms: number) => new Promise<void>((done) => window.setTimeout(done, ms));

export function conversationKey(name: string): string {
  return name.toLowerCase();
}

export function compareNames(a: string, b: string): number {
  return a.toLowerCase().localeCompare(b.toLowerCase());
}

function lastSeq(conversation: Conversation): number {
  return conversation.seqs.size ? Math.max(...conversation.seqs.keys()) : 0;
}

function firstSeq(conversation: Conversation): number {
  return conversation.seqs.size ? Math.min(...conversation.seqs.keys()) : 0;
}

const IGNORED_KEY = "parley.ignored";

function loadIgnored(): string[] {
  try {
    const stored: unknown = JSON.parse(window.localStorage.getItem(IGNORED_KEY) ?? "[]");
    return Array.isArray(stored) ? stored.filter((name): name is string => typeof name === "string") : [];
  } catch {
    return [];
  }
}

export class Chat {
  status: Status = { kind: "closed", reason: "" };
  nick = "";
  account = false; // logged in to an account: the server keeps read markers
  away = "";
  ignored = new Set<string>(loadIgnored()); // name keys whose messages are hidden here
  conversations = new Map<string, Conversation>();
  current = "";
  roomList: { room: string; members: number; topic: string }[] = [];
  readonly outbox: Outbox;
  private login: Login | null = null;
  private token = ""; // a session token from a password login, kept in memory only
  // The server's history epoch at the last login (null before the first): when it changes, the
  // seqs shown may since name other messages, or none.
  private historyEpoch: number | null = null;
  private connection: Connection;
  private listeners = new Set<() => void>();
  private markTimer: number | undefined;
  // Room key -> when its members were last read again after a summary, and the read to come.
  private membersRead = new Map<string, number>();
  private membersDue = new Map<string, number>();
  // Reads under way, by what they read: asking again while one runs waits for it instead.
  private running = new Map<string, Promise<void>>();
  private namesTimer: number | undefined;
  private membersOpen = false; // the members panel, where it shows only when opened (phones)

  constructor(url = socketUrl(window.location)) {
    this.connection = new Connection(
      url,
      (frame) => this.onEvent(frame),
      (status) => {
        this.status = status;
        this.changed();
        if (status.kind === "open") void this.outbox.flush();
      },
      () => this.greet(),
    );
    this.outbox = new Outbox(
      (item) => this.sendOne(item),
      () => this.changed(),
      (waiting) => {
        if (this.nick) keepOutbox(this.nick, waiting);
      },
    );
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) this.markRead();
    });
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

  // A request the user asked for: retried while the server says to slow down.
  request(frame: Omit<Frame, "id">): Promise<Frame> {
    return this.retried(frame, SLOW_DOWN);
  }

  // A whole list the server sends in pages (who, list, unread): `field` of every page, asked
  // after each page's `next` until it is "" (or does not move on, or after MOST_PAGES). The
  // first reply comes back with every item in `field`.
  async pages(frame: Omit<Frame, "id">, field: string): Promise<Frame> {
    const first = await this.patient(frame);
    const items = [...((first[field] as unknown[]) ?? [])];
    let after = typeof first.next === "string" ? first.next : "";
    for (let page = 1; after && page < MOST_PAGES; page++) {
      const reply = await this.patient({ ...frame, after });
      items.push(...((reply[field] as unknown[]) ?? []));
      const next = typeof reply.next === "string" ? reply.next : "";
      after = next === after ? "" : next;
    }
    return { ...first, [field]: items, next: "" };
  }

  // A request the user did not type: retried while the server asks to slow down or to try again.
  private patient(frame: Omit<Frame, "id">): Promise<Frame> {
    return this.retried(frame, RETRY_CODES);
  }

  private async retried(frame: Omit<Frame, "id">, codes: Set<string>): Promise<Frame> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.connection.request(frame);
      } catch (error) {
        if (!(error instanceof RequestError) || !codes.has(error.code) || attempt >= RETRIES) throw error;
        await sleep(500 * attempt);
      }
    }
  }

  // One read of ``what`` at a time: a second ask while it runs gets the same answer, unless
  // ``fresh`` (something changed since it was sent): then it is read again after it.
  private once(what: string, read: () => Promise<void>, fresh = false): Promise<void> {
    const running = this.running.get(what);
    if (running !== undefined && !fresh) return running;
    const started: Promise<void> = (running ?? Promise.resolve())
      .catch(() => undefined)
      .then(read)
      .finally(() => {
        if (this.running.get(what) === started) this.running.delete(what);
      });
    this.running.set(what, started);
    return started;
  }

  async quit(): Promise<void> {
    await this.leave("bye", "You left.");
  }

  private async leave(type: "bye", reason: string): Promise<void> {
    try {
      await this.request({ type });
    } catch {
      // Leaving anyway.
    }
    this.connection.stop(reason);
    this.outbox.clear();
    this.nick = "";
    this.token = "";
    this.conversations.clear();
    this.current = "";
    this.changed();
  }

  conversation(name: string): Conversation {
    const key = conversationKey(name);
    let found = this.conversations.get(key);
    if (found === undefined) {
      found = {
        name,
        room: name.startsWith("#"),
        lines: [],
        seqs: new Map(),
        members: [],
        namesRead: false,
        total: 0,
        stateRead: false,
        latestRead: false,
        quiet: false,
        summary: "",
        allMembers: false,
        topic: "",
        unread: 0,
        mentions: 0,
        readSeq: 0,
        olderDone: false,
        loadingOlder: false,
        presence: "unknown",
        away: "",
      };
      this.conversations.set(key, found);
    }
    return found;
  }

  // The conversations in the order the side bar lists them: rooms, then private ones.
  ordered(): Conversation[] {
    const all = [...this.conversations.values()];
    return [...all.filter((c) => c.room), ...all.filter((c) => !c.room)];
  }

  show(name: string): void {
    const conversation = this.conversation(name);
    this.current = conversationKey(name);
    this.changed();
    this.markRead();
    if (this.status.kind !== "open") return;
    if (!conversation.latestRead && conversation.seqs.size === 0 && !conversation.olderDone) {
      this.loadHistory(conversation.name).catch((error: Error) => this.info(error.message, true, conversationKey(name)));
    }
    if (conversation.room) this.readRoom(conversation);
    else void this.lookUp(conversation.name);
  }

  // What the view of a room needs and does not have: its topic and count (cheap, at once), and
  // its names once the user stays on it, where the members panel shows them.
  private readRoom(room: Conversation): void {
    if (!room.stateRead) void this.loadRoom(room.name);
    window.clearTimeout(this.namesTimer);
    if (room.namesRead || !this.membersShown()) return;
    const key = conversationKey(room.name);
    this.namesTimer = window.setTimeout(() => {
      const now = this.conversations.get(key);
      if (now !== undefined && this.current === key && !now.namesRead) void this.loadMembers(now.name);
    }, NAMES_DWELL_MS);
  }

  private membersShown(): boolean {
    return this.membersOpen || !window.matchMedia(PHONE_LAYOUT).matches;
  }

  // The members panel opened or closed where it shows only when opened.
  showMembers(open: boolean): void {
    this.membersOpen = open;
    const conversation = this.conversations.get(this.current);
    if (open && conversation?.room && this.status.kind === "open") this.readRoom(conversation);
  }

  // Alt+Up / Alt+Down: the conversation above or below; with ``unreadOnly``, the next with news.
  step(by: 1 | -1, unreadOnly = false): void {
    const list = this.ordered();
    if (list.length === 0) return;
    const at = list.findIndex((c) => conversationKey(c.name) === this.current);
    for (let n = 1; n <= list.length; n++) {
      const next = list[(at + by * n + list.length * n) % list.length];
      if (!unreadOnly || next.unread > 0) {
        this.show(next.name);
        return;
      }
    }
  }

  // /ignore and /unignore: hide a user's messages on this browser (kept across visits).
  ignore(nick: string, on: boolean): void {
    const key = conversationKey(nick);
    if (on) this.ignored.add(key);
    else this.ignored.delete(key);
    try {
      window.localStorage.setItem(IGNORED_KEY, JSON.stringify([...this.ignored]));
    } catch {
      // Storage refused (private mode): ignored for this visit only.
    }
  }

  // The other user of a private conversation: online when in one of our rooms, else as the
  // server last said (whois).
  presenceOf(conversation: Conversation): Conversation["presence"] {
    const key = conversationKey(conversation.name);
    const inRoom = [...this.conversations.values()].some(
      (c) => c.room && c.members.some((member) => conversationKey(member) === key),
    );
    return inRoom ? "online" : conversation.presence;
  }

  totals(): { unread: number; mention: boolean } {
    let unread = 0;
    let mention = false;
    for (const conversation of this.conversations.values()) {
      unread += conversation.unread;
      mention ||= conversation.mentions > 0;
    }
    return { unread, mention };
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
    const known = this.conversations.has(conversationKey(name));
    const conversation = this.conversation(name);
    this.roomState(conversation, reply);
    // Coming in, the server sends the latest messages after its reply (one already in the room
    // gets none, but its history was read when it was opened).
    if (!known) conversation.latestRead = true;
    this.show(name);
  }

  async part(room: string): Promise<void> {
    await this.request({ type: "part", room });
    this.forget(room);
  }

  forget(name: string): void {
    const key = conversationKey(name);
    this.conversations.delete(key);
    if (this.current === key) this.current = this.ordered()[0] ? conversationKey(this.ordered()[0].name) : "";
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

  // The latest page of a conversation's history.
  loadHistory(name: string): Promise<void> {
    return this.once(`history ${conversationKey(name)}`, async () => {
      const reply = await this.patient({ type: "history", to: name, limit: PAGE });
      const conversation = this.conversation(name);
      conversation.latestRead = true;
      this.addMessages((reply.messages as Frame[]) ?? [], false);
      if (!reply.more) conversation.olderDone = true;
      this.countMentions(conversation);
      this.changed();
    });
  }

  // The page before the first message shown (scrolling up, /history). How many came.
  async loadOlder(name: string): Promise<number> {
    const conversation = this.conversation(name);
    if (conversation.loadingOlder || conversation.olderDone) return 0;
    const first = firstSeq(conversation);
    if (first === 1) {
      conversation.olderDone = true;
      this.changed();
      return 0;
    }
    conversation.loadingOlder = true;
    this.changed();
    try {
      const reply = await this.patient({ type: "history", to: conversation.name, limit: PAGE, ...(first ? { before: first } : {}) });
      const messages = (reply.messages as Frame[]) ?? [];
      this.addMessages(messages, false);
      if (!reply.more) conversation.olderDone = true;
      return messages.length;
    } finally {
      conversation.loadingOlder = false;
      this.changed();
    }
  }

  // The room's topic, count and whether it is quiet, as a `room` reply says.
  loadRoom(room: string): Promise<void> {
    return this.once(`room ${conversationKey(room)}`, async () => {
      try {
        this.roomState(this.conversation(room), await this.patient({ type: "topic", room }));
        this.changed();
      } catch {
        // Not in it (any more): as it was.
      }
    });
  }

  // The room's members: every name, or in a quiet room (too big to announce each join) the
  // first page, unless ``all`` (the user asked for the whole list; by default as last read).
  loadMembers(room: string, all?: boolean, fresh = false): Promise<void> {
    return this.once(`who ${conversationKey(room)} ${String(all)}`, async () => {
      try {
        const conversation = this.conversation(room);
        const whole = !conversation.quiet || (all ?? conversation.allMembers);
        const reply = whole
          ? await this.pages({ type: "who", room, limit: 1000 }, "users")
          : await this.patient({ type: "who", room, limit: QUIET_ROOM_NAMES });
        const names = reply.users as string[];
        // The count stays the room reply's: a first page's total may be a second old.
        conversation.members = names;
        conversation.namesRead = true;
        // Every name of a room that grew big stays asked for only if the user asked.
        conversation.allMembers = conversation.quiet && whole;
        this.changed();
      } catch {
        // Not in it (any more): the list stays as it was.
      }
    }, fresh);
  }

  // After a summary: the names of the room in view, read again soon (a room opened later is
  // read when it is shown). A later summary moves the read after it: a read before the first
  // page has caught up with the latest summary would keep names gone since.
  private readMembersAgain(room: Conversation): void {
    const key = conversationKey(room.name);
    if (!this.reading(room)) return;
    window.clearTimeout(this.membersDue.get(key));
    const wait = Math.max(FIRST_PAGE_AGE_MS, (this.membersRead.get(key) ?? 0) + MEMBERS_REFRESH_MS - Date.now());
    const timer = window.setTimeout(() => {
      this.membersDue.delete(key);
      this.membersRead.set(key, Date.now());
      const now = this.conversations.get(key);
      if (now !== undefined && this.reading(now) && this.membersShown()) void this.loadMembers(now.name, undefined, true);
    }, wait);
    this.membersDue.set(key, timer);
  }

  // What a `room` reply says of a room: its topic, how many are in it, whether it is quiet.
  private roomState(conversation: Conversation, reply: Frame): void {
    conversation.topic = String(reply.topic ?? "");
    if (typeof reply.members === "number") conversation.total = reply.members;
    conversation.quiet = reply.quiet === true;
    conversation.stateRead = true;
  }

  // Whether the other user of a private conversation is online, and away.
  async lookUp(nick: string): Promise<void> {
    try {
      const reply = await this.request({ type: "whois", nick });
      const conversation = this.conversation(nick);
      conversation.presence = reply.online ? "online" : "offline";
      conversation.away = typeof reply.away === "string" ? reply.away : "";
    } catch (error) {
      if (error instanceof RequestError && error.code === "no-such-user") this.conversation(nick).presence = "offline";
    }
    this.changed();
  }

  // A message into the outbox: shown at once as waiting, sent when connected, in order.
  send(to: string, text: string): void {
    this.wait({ msgId: crypto.randomUUID().replaceAll("-", ""), to, text });
  }

  private wait(item: Outgoing): void {
    const conversation = this.conversation(item.to);
    conversation.lines = [
      ...conversation.lines,
      { kind: "pending", key: lineKey(), sender: this.nick, text: item.text, msgId: item.msgId },
    ];
    this.outbox.add(item);
  }

  private async sendOne(item: Outgoing): Promise<Attempt> {
    if (this.status.kind !== "open") return "later";
    try {
      const reply = await this.patient({ type: "send", to: item.to, text: item.text, msg_id: item.msgId });
      this.settle(item, Number(reply.seq));
      if (typeof reply.away === "string") this.info(`${item.to} is away: ${reply.away}`, false, conversationKey(item.to));
      return "sent";
    } catch (error) {
      if (!(error instanceof RequestError)) throw error;
      if (error.code === "not-connected") return "later"; // sent again once reconnected
      if (RETRY_CODES.has(error.code)) {
        // Still refused after the retries: the server is struggling; try again in a while.
        window.setTimeout(() => void this.outbox.flush(), 10_000);
        return "later";
      }
      this.settle(item, 0);
      // A conversation opened only for this message, with nobody there, goes again.
      const target = this.conversations.get(conversationKey(item.to));
      if (target && target.seqs.size === 0 && NO_SUCH.has(error.code)) this.forget(target.name);
      this.info(`Not sent to ${item.to} (${visible(item.text).slice(0, 40)}): ${error.message}`, true);
      return "refused";
    }
  }

  // The waiting line goes; the message itself comes as an event (before or after the reply).
  private settle(item: Outgoing, seq: number): void {
    for (const conversation of this.conversations.values()) {
      const before = conversation.lines.length;
      conversation.lines = conversation.lines.filter((line) => !(line.kind === "pending" && line.msgId === item.msgId));
      if (conversation.lines.length !== before && seq > conversation.readSeq && this.reading(conversation)) {
        this.scheduleMark();
      }
    }
    this.changed();
  }

  private async greet(): Promise<void> {
    const login = this.login;
    if (login === null) return;
    const welcome = await this.request({ type: "hello", versions: [1], client: "parley-web/0.1.0" });
    const epoch = typeof welcome.history_epoch === "number" ? welcome.history_epoch : 0;
    const reload = this.historyEpoch !== null && epoch !== this.historyEpoch;
    const credentials = this.token ? { token: this.token } : login.password ? { password: login.password } : {};
    let reply: Frame;
    try {
      reply = await this.request({ type: "nick", nick: login.nick, ...credentials });
    } catch (error) {
      // Back after the network dropped, the server may not have noticed the old connection
      // go yet: the name is still its. Try again later rather than give up.
      if (this.nick && error instanceof RequestError && error.code === "nick-taken") {
        throw new RequestError("retry", error.message);
      }
      throw error;
    }
    if (typeof reply.token === "string") {
      // The password is not kept: reconnecting uses the token.
      this.token = reply.token;
      login.password = "";
    }
    const first = !this.nick;
    this.nick = String(reply.nick);
    // What this tab had not sent yet when it was last closed or reloaded: sent now, in order,
    // with the same msg_ids (one that had reached the server is answered "duplicate").
    if (first) for (const item of storedOutbox(this.nick)) this.wait(item);
    this.account = typeof reply.role === "string";
    this.away = "";
    const rooms = (reply.rooms as string[] | undefined) ?? [];
    if (reload) {
      // The server lost its last messages: what was shown makes way for what it has (read
      // below, as for a conversation not seen yet), and each conversation says why.
      for (const conversation of this.conversations.values()) {
        conversation.lines = conversation.lines.filter((line) => line.kind === "pending");
        conversation.seqs.clear();
        conversation.olderDone = false;
        this.info(HISTORY_RELOADED, false, conversationKey(conversation.name));
      }
    }
    // What was read of the rooms may have changed while away: read again when shown.
    for (const conversation of this.conversations.values()) {
      conversation.stateRead = false;
      conversation.namesRead = false;
    }
    // On a reconnect, guests rejoin the rooms they had open.
    for (const conversation of [...this.conversations.values()]) {
      if (conversation.room && !rooms.some((room) => conversationKey(room) === conversationKey(conversation.name))) {
        try {
          this.roomState(conversation, await this.patient({ type: "join", room: conversation.name }));
        } catch (error) {
          this.info(`Could not rejoin ${conversation.name}: ${(error as Error).message}`, true, conversationKey(conversation.name));
        }
      }
    }
    for (const room of rooms) this.conversation(room);
    if (first && this.account) await this.loadUnread();
    if (!this.current && this.conversations.size > 0) this.current = conversationKey(this.ordered()[0].name);
    this.changed();
    // What was said while away (or before the page opened). One conversation that cannot be
    // read (a guest who left) is said so in it, and the others go on.
    for (const conversation of [...this.conversations.values()]) {
      try {
        if (conversation.seqs.size > 0) {
          await this.resume(conversation);
        } else {
          await this.loadHistory(conversation.name);
        }
      } catch (error) {
        if (error instanceof RequestError && error.code === "not-connected") throw error;
        this.info(`Could not fetch the messages of ${conversation.name}: ${(error as Error).message}`, true, conversationKey(conversation.name));
      }
    }
    this.historyEpoch = epoch; // only now: a login cut short reloads again on the next
    // The other rooms' topics and names are read when they are shown.
    const shown = this.conversations.get(this.current);
    if (shown?.room) this.readRoom(shown);
    this.markRead();
  }

  // The server's read markers (accounts): unread counts for every conversation, at login.
  private async loadUnread(): Promise<void> {
    try {
      const reply = await this.pages({ type: "unread" }, "conversations");
      for (const entry of reply.conversations as { to: string; count: number; last_seq: number }[]) {
        const conversation = this.conversation(entry.to);
        conversation.unread = entry.count;
        conversation.readSeq = entry.last_seq - entry.count;
      }
    } catch {
      // Counts start at zero; live messages are still counted.
    }
  }

  // Everything after the last message seen, page by page: no gap, and none twice.
  private async resume(conversation: Conversation): Promise<void> {
    for (;;) {
      const after = lastSeq(conversation);
      const reply = await this.patient({ type: "history", to: conversation.name, after, limit: 200 });
      const messages = (reply.messages as Frame[]) ?? [];
      this.addMessages(messages, true);
      if (!reply.more || messages.length === 0) return;
    }
  }

  private onEvent(frame: Frame): void {
    switch (frame.type) {
      case "message":
        // Private messages kept for an account come as events at login: news, though history.
        this.addMessages([frame], !frame.history || !String(frame.to).startsWith("#"), !frame.history);
        break;
      case "joined":
      case "left": {
        const room = this.conversations.get(conversationKey(String(frame.room)));
        const nick = String(frame.nick);
        if (nick === this.nick && frame.type === "left") {
          const why = frame.reason ? ` (${String(frame.reason)} by ${String(frame.by)}${frame.message ? `: ${String(frame.message)}` : ""})` : "";
          this.info(`You left ${String(frame.room)}${why}.`, true, conversationKey(String(frame.room)));
        }
        this.presenceChanged(nick, frame.type === "joined");
        if (room === undefined) break;
        const others = room.members.filter((member) => member !== nick);
        // The count follows joins and parts (in a quiet room only a kick, or a room announcing
        // again once smaller, comes one by one) until the next count the server sends.
        if (conversationKey(nick) !== conversationKey(this.nick)) {
          const listed = others.length !== room.members.length;
          if (frame.type === "left") room.total = Math.max(0, room.total - 1);
          else if (!listed) room.total += 1;
        }
        room.members = frame.type === "joined" ? [...others, nick].sort(compareNames) : others;
        if (nick !== this.nick) {
          this.info(frame.type === "joined" ? `${nick} joined.` : `${nick} left.`, false, conversationKey(room.name));
        }
        this.changed();
        break;
      }
      case "members": {
        const room = this.conversations.get(conversationKey(String(frame.room)));
        if (room === undefined) break;
        room.quiet = true;
        room.total = Number(frame.members);
        room.summary = summaryText(Number(frame.joined), Number(frame.left));
        // The names are stale: the room in view reads them again soon, another when shown.
        room.namesRead = false;
        if (this.membersShown()) this.readMembersAgain(room);
        this.changed();
        break;
      }
      case "going-away":
        // The server restarts: finish what is under way, leave, and come back (on another
        // server at the same address) where we were.
        this.info(`Server: ${String(frame.message)}`);
        void this.connection.moveOn(Number(frame.seconds));
        break;
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

  // Someone came or went: a private conversation with them shows it.
  private presenceChanged(nick: string, joined: boolean): void {
    const conversation = this.conversations.get(conversationKey(nick));
    if (conversation === undefined || conversation.room) return;
    if (joined) {
      conversation.presence = "online";
    } else if (![...this.conversations.values()].some((c) => c.room && c.members.includes(nick))) {
      // Gone from every room we share: whether still online, only the server knows.
      void this.lookUp(nick);
    }
  }

  private reading(conversation: Conversation): boolean {
    return conversationKey(conversation.name) === this.current && !document.hidden && this.status.kind !== "closed";
  }

  // ``fresh``: news (live, or missed while away), counted unread when not being read.
  // ``live``: as it happens: may notify.
  private addMessages(frames: Frame[], fresh: boolean, live = false): void {
    for (const frame of frames) {
      const to = String(frame.to);
      const sender = String(frame.sender);
      const own = conversationKey(sender) === conversationKey(this.nick);
      if (!own && this.ignored.has(conversationKey(sender))) continue;
      const other = to.startsWith("#") ? to : own ? to : sender;
      const conversation = this.conversation(other);
      const seq = Number(frame.seq);
      const msgId = String(frame.msg_id ?? "");
      const seen = conversation.seqs.get(seq);
      if (seen !== undefined) {
        if (seen === msgId) continue;
        // The same seq with another msg_id: a new conversation under the same name (the
        // other side reconnected as a new guest). Count afresh.
        conversation.seqs.clear();
        conversation.readSeq = 0;
      }
      conversation.seqs.set(seq, msgId);
      const text = String(frame.text);
      const line: Line = { kind: "message", key: lineKey(), sender, text, seq, ts: Number(frame.ts), msgId };
      const lines = conversation.lines.filter((l) => !(l.kind === "pending" && l.msgId === msgId && own));
      // In seq order, whether it came live or from the record; waiting lines stay last.
      let at = lines.length;
      while (at > 0) {
        const before = lines[at - 1];
        if (before.kind === "message" && before.seq < seq) break;
        if (before.kind === "info" && fresh) break;
        at -= 1;
      }
      lines.splice(at, 0, line);
      conversation.lines = lines;
      if (fresh && !own && seq > conversation.readSeq) this.arrived(conversation, line, live);
    }
    if (!this.current && frames.length > 0) this.current = conversationKey(this.ordered()[0]?.name ?? "");
    this.changed();
  }

  // A message from someone else: unread unless being read; a notification when it matters.
  private arrived(conversation: Conversation, line: Line & { kind: "message" }, live: boolean): void {
    const named = !conversation.room || mentions(line.text, this.nick);
    if (!conversation.room && live) conversation.presence = "online";
    if (this.reading(conversation)) {
      this.scheduleMark();
    } else {
      conversation.unread += 1;
      if (named) conversation.mentions += 1;
    }
    const background = conversationKey(conversation.name) !== this.current;
    if (live && (document.hidden || (named && background))) {
      const where = conversation.room ? ` in ${conversation.name}` : " (private)";
      const body = line.text.startsWith("/me ") ? `* ${line.sender} ${line.text.slice(4)}` : line.text;
      notify(`${line.sender}${where}`, visible(body).slice(0, 200), conversationKey(conversation.name), () =>
        this.show(conversation.name),
      );
    }
  }

  // After a page of history at login: how many of the unread messages name you.
  private countMentions(conversation: Conversation): void {
    if (conversation.unread === 0) return;
    let named = 0;
    for (const line of conversation.lines) {
      if (line.kind !== "message" || line.seq <= conversation.readSeq) continue;
      if (conversationKey(line.sender) === conversationKey(this.nick)) continue;
      if (!conversation.room || mentions(line.text, this.nick)) named += 1;
    }
    conversation.mentions = Math.min(named, conversation.unread);
  }

  // The open conversation is read: counts to zero, and the server's marker moved (accounts).
  markRead(): void {
    const conversation = this.conversations.get(this.current);
    if (conversation === undefined || !this.reading(conversation)) return;
    if (conversation.unread || conversation.mentions) {
      conversation.unread = 0;
      conversation.mentions = 0;
      this.changed();
    }
    // At once: a request sent after it (like /unread) then sees the marker moved.
    window.clearTimeout(this.markTimer);
    void this.sendMark();
  }

  // One `read` for a burst of messages, half a second after the last.
  private scheduleMark(): void {
    window.clearTimeout(this.markTimer);
    this.markTimer = window.setTimeout(() => void this.sendMark(), 500);
  }

  private async sendMark(): Promise<void> {
    const conversation = this.conversations.get(this.current);
    if (conversation === undefined || !this.reading(conversation)) return;
    const seq = lastSeq(conversation);
    if (seq <= conversation.readSeq) return;
    conversation.readSeq = seq;
    if (!this.account || this.status.kind !== "open") return;
    try {
      await this.request({ type: "read", to: conversation.name, seq });
    } catch {
      // The marker moves with the next message read.
    }
  }

  changed(): void {
    for (const listener of this.listeners) listener();
  }
}

// How a room's members count reads: the server's count in a quiet room or before its names
// are read, else the names listed.
export function memberCount(conversation: Conversation): number {
  return conversation.quiet || !conversation.namesRead ? conversation.total : conversation.members.length;
}

// "12 joined and 3 left since the count before": a `members` summary, as a line.
export function summaryText(joined: number, left: number): string {
  const parts = [joined ? `${joined} joined` : "", left ? `${left} left` : ""].filter(Boolean);
  return parts.length ? `${parts.join(" and ")} since the count before.` : "";
}

export { RequestError };
