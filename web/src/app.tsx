// The page: a login form, then the conversations, the open one's messages and members.
// Text from the server goes into the page only as text nodes (JSX children), never as HTML.

import { useEffect, useLayoutEffect, useReducer, useRef, useState } from "preact/hooks";
import { showBadge } from "./badge";
import { Chat, Conversation, Line, conversationKey } from "./chat";
import { COMMANDS, runLine } from "./commands";
import { Cycle, complete } from "./completion";
import { Status } from "./connection";
import { Permission, askPermission, permission } from "./notify";
import { RichText } from "./richtext";
import { Theme, applyTheme, nextTheme, storedTheme } from "./theme";

export function App({ chat }: { chat: Chat }) {
  const [, redraw] = useReducer((n: number, _: undefined) => n + 1, 0);
  const [drawer, setDrawer] = useState(false);
  const [theme, setTheme] = useState<Theme>(storedTheme);
  useEffect(() => chat.subscribe(() => redraw(undefined)), [chat]);
  useLayoutEffect(() => applyTheme(theme), [theme]);
  const totals = chat.totals();
  useEffect(() => showBadge(totals.unread, totals.mention), [totals.unread, totals.mention]);
  useEffect(() => {
    const onKey = (event: KeyboardEvent) => {
      if (event.key === "Escape" && drawer) {
        setDrawer(false);
        return;
      }
      if (!event.altKey || event.ctrlKey || event.metaKey || !chat.nick) return;
      if (event.key !== "ArrowUp" && event.key !== "ArrowDown") return;
      event.preventDefault();
      chat.step(event.key === "ArrowUp" ? -1 : 1, event.shiftKey);
      setDrawer(false);
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [chat, drawer]);
  const status = chat.status;
  if (!chat.nick && status.kind !== "waiting" && status.kind !== "connecting") {
    return <LoginForm chat={chat} status={status} />;
  }
  if (!chat.nick) {
    return (
      <main class="login">
        <StatusLine status={status} />
      </main>
    );
  }
  const current = chat.conversations.get(chat.current);
  const waiting = chat.outbox.waiting.length;
  return (
    <div class={drawer ? "chat drawer-open" : "chat"}>
      <header>
        <button
          type="button"
          class="menu"
          aria-expanded={drawer}
          aria-controls="conversations"
          title="Conversations (Escape closes)"
          onClick={() => setDrawer(!drawer)}
        >
          ☰<span class="visually-hidden">Conversations</span>
          {totals.unread > 0 ? <span class={totals.mention ? "badge mention" : "badge"}>{totals.unread}</span> : null}
        </button>
        <h1>Parley</h1>
        <span class="me">{chat.nick}</span>
        {chat.away ? <span class="away-mark">(away)</span> : null}
        <StatusLine status={status} />
        {waiting > 0 ? (
          <span class="outbox" role="note">
            {waiting === 1 ? "1 message waiting to be sent" : `${waiting} messages waiting to be sent`}
          </span>
        ) : null}
        <span class="tools">
          <NotificationButton />
          <button
            type="button"
            class="theme"
            title="Light, dark, or as the system says"
            onClick={() => setTheme(nextTheme(theme))}
          >
            Theme: {theme}
          </button>
        </span>
      </header>
      <Sidebar chat={chat} close={() => setDrawer(false)} />
      <main>{current ? <ConversationView chat={chat} conversation={current} /> : <p>Join a room: /join #room</p>}</main>
    </div>
  );
}

function NotificationButton() {
  const [state, setState] = useState<Permission>(permission);
  if (state !== "default") return null;
  return (
    <button type="button" onClick={() => askPermission().then(setState, () => setState(permission()))}>
      Enable notifications
    </button>
  );
}

function StatusLine({ status }: { status: Status }) {
  let text: string;
  switch (status.kind) {
    case "open":
      text = "Connected";
      break;
    case "connecting":
      text = status.attempt > 1 ? `Reconnecting (attempt ${status.attempt})…` : "Connecting…";
      break;
    case "waiting":
      text = `Connection lost; trying again in ${status.seconds} s (attempt ${status.attempt + 1})`;
      break;
    case "closed":
      text = status.reason || "Not connected";
      break;
  }
  return (
    <p class={`status status-${status.kind}`} role="status" data-status={status.kind}>
      {text}
    </p>
  );
}

function LoginForm({ chat, status }: { chat: Chat; status: Status }) {
  const [nick, setNick] = useState("");
  const [password, setPassword] = useState("");
  return (
    <main class="login">
      <h1>Parley</h1>
      <form
        onSubmit={(event) => {
          event.preventDefault();
          if (nick.trim()) chat.connect({ nick: nick.trim(), password });
        }}
      >
        <label>
          Nickname
          <input name="nick" autoFocus required value={nick} onInput={(e) => setNick(e.currentTarget.value)} />
        </label>
        <label>
          Password (accounts only; leave empty to join as a guest)
          <input
            name="password"
            type="password"
            autoComplete="current-password"
            value={password}
            onInput={(e) => setPassword(e.currentTarget.value)}
          />
        </label>
        <button type="submit">Log in</button>
      </form>
      {status.kind === "closed" && status.reason ? <StatusLine status={status} /> : null}
    </main>
  );
}

function Badge({ conversation, id }: { conversation: Conversation; id: string }) {
  if (conversation.unread === 0) return null;
  const what = `${conversation.unread} unread${conversation.mentions ? `, ${conversation.mentions} for you` : ""}`;
  return (
    <span id={id} class={conversation.mentions ? "badge mention" : "badge"} title={what}>
      {conversation.unread}
      {conversation.mentions ? "!" : ""}
      <span class="visually-hidden"> ({what})</span>
    </span>
  );
}

function Sidebar({ chat, close }: { chat: Chat; close: () => void }) {
  const [room, setRoom] = useState("");
  const [error, setError] = useState("");
  const conversations = chat.ordered();
  return (
    <nav id="conversations" aria-label="Conversations">
      <button type="button" class="drawer-close" onClick={close}>
        Close
      </button>
      <h2>Conversations</h2>
      <ul class="conversations">
        {conversations.map((conversation, index) => {
          const key = conversationKey(conversation.name);
          const badge = `badge-${index}`;
          return (
            <li key={key}>
              <button
                type="button"
                aria-current={key === chat.current ? "page" : undefined}
                aria-describedby={conversation.unread ? badge : undefined}
                class={conversation.unread ? "unread" : undefined}
                onClick={() => {
                  chat.show(conversation.name);
                  close();
                }}
              >
                {conversation.room ? null : (
                  <span class={`presence ${chat.presenceOf(conversation)}`} title={chat.presenceOf(conversation)} aria-hidden="true" />
                )}
                {conversation.name}
              </button>
              <Badge conversation={conversation} id={badge} />
            </li>
          );
        })}
      </ul>
      <form
        class="join"
        onSubmit={(event) => {
          event.preventDefault();
          const name = room.trim();
          if (!name) return;
          chat.join(name.startsWith("#") ? name : `#${name}`).then(
            () => {
              setRoom("");
              setError("");
              close();
            },
            (e: Error) => setError(e.message),
          );
        }}
      >
        <label>
          Join a room
          <input name="room" placeholder="#room" value={room} onInput={(e) => setRoom(e.currentTarget.value)} />
        </label>
        <button type="submit">Join</button>
        {error ? <p class="error" role="alert">{error}</p> : null}
      </form>
      <h2>Rooms</h2>
      <button type="button" onClick={() => chat.loadRooms().catch((e: Error) => setError(e.message))}>
        Show rooms
      </button>
      <ul class="rooms" aria-label="Rooms on the server">
        {chat.roomList.map((r) => (
          <li key={r.room}>
            <button
              type="button"
              onClick={() => {
                chat.join(r.room).then(close, (e: Error) => setError(e.message));
              }}
            >
              {r.room} ({r.members})
            </button>
            {r.topic ? <span class="topic">{r.topic}</span> : null}
          </li>
        ))}
      </ul>
      <p class="keys">Alt+↑ / Alt+↓: previous / next conversation; with Shift: the next with unread messages.</p>
    </nav>
  );
}

function presenceText(chat: Chat, conversation: Conversation): string {
  const presence = chat.presenceOf(conversation);
  if (presence === "unknown") return "";
  if (presence === "offline") return "offline";
  return conversation.away ? `online, away: ${conversation.away}` : "online";
}

// Where ``line`` is from the top of the visible part of ``log``, in (fractional) pixels.
function offsetIn(log: HTMLElement, line: HTMLElement): number {
  return line.getBoundingClientRect().top - log.getBoundingClientRect().top;
}

function ConversationView({ chat, conversation }: { chat: Chat; conversation: Conversation }) {
  const log = useRef<HTMLOListElement>(null);
  const atBottom = useRef(true);
  const lastTop = useRef(0);
  // While older messages load: the first message shown and where it was, to keep it there.
  const anchor = useRef<{ key: string; offset: number } | null>(null);
  const [members, setMembers] = useState(false);
  useLayoutEffect(() => {
    const element = log.current;
    if (!element) return;
    const kept = anchor.current;
    if (kept && !conversation.loadingOlder) {
      anchor.current = null;
      const line = element.querySelector<HTMLElement>(`[data-key="${kept.key}"]`);
      if (line) element.scrollTop += offsetIn(element, line) - kept.offset;
    } else if (!kept && atBottom.current) {
      element.scrollTop = element.scrollHeight;
    }
  });
  useEffect(() => {
    atBottom.current = true;
    anchor.current = null;
    const element = log.current;
    if (element) element.scrollTop = element.scrollHeight;
  }, [conversation.name]);
  const loadOlder = () => {
    const element = log.current;
    if (!element || conversation.loadingOlder || conversation.olderDone) return;
    const first = element.querySelector<HTMLElement>("[data-key]");
    if (first) anchor.current = { key: first.dataset.key ?? "", offset: offsetIn(element, first) };
    chat.loadOlder(conversation.name).catch((e: Error) => chat.info(e.message, true));
  };
  const presence = conversation.room ? "" : presenceText(chat, conversation);
  return (
    <div class={members ? "conversation members-open" : "conversation"}>
      <h2 class="title">
        <bdi>{conversation.name}</bdi>
        {conversation.topic ? <span class="topic">{conversation.topic}</span> : null}
        {presence ? <span class="topic presence-text">{presence}</span> : null}
      </h2>
      {conversation.room ? (
        <button
          type="button"
          class="members-toggle"
          aria-expanded={members}
          aria-controls="members"
          onClick={() => setMembers(!members)}
        >
          Members ({conversation.members.length})
        </button>
      ) : null}
      <ol
        class="log"
        role="log"
        aria-live="polite"
        aria-relevant="additions"
        aria-label={`Messages in ${conversation.name}`}
        tabIndex={0}
        ref={log}
        onScroll={(event) => {
          const element = event.currentTarget;
          atBottom.current = element.scrollHeight - element.scrollTop - element.clientHeight < 40;
          // Only a scroll upwards near the top loads more: following new messages down does not.
          const up = element.scrollTop < lastTop.current;
          lastTop.current = element.scrollTop;
          if (up && element.scrollTop < 80) loadOlder();
        }}
      >
        <li class="older">
          {conversation.olderDone ? (
            <span class="info">The beginning of {conversation.name}.</span>
          ) : conversation.loadingOlder ? (
            <span class="info">Loading earlier messages…</span>
          ) : (
            <button type="button" onClick={loadOlder}>
              Load earlier messages
            </button>
          )}
        </li>
        {conversation.lines.map((line) => (
          <LineView key={line.key} line={line} />
        ))}
      </ol>
      {conversation.room ? (
        <aside id="members" aria-label="Members">
          <h3>Members ({conversation.members.length})</h3>
          <ul class="members">
            {conversation.members.map((member) => (
              <li key={member}>
                <button
                  type="button"
                  title={`Private conversation with ${member}`}
                  onClick={() => {
                    setMembers(false);
                    chat.show(member);
                  }}
                >
                  <span class="presence online" aria-hidden="true" />
                  {member}
                </button>
                {member === chat.nick ? <span class="you">{chat.away ? " (you, away)" : " (you)"}</span> : null}
              </li>
            ))}
          </ul>
        </aside>
      ) : null}
      <Compose chat={chat} conversation={conversation} />
    </div>
  );
}

function Compose({ chat, conversation }: { chat: Chat; conversation: Conversation }) {
  const [text, setText] = useState("");
  const input = useRef<HTMLInputElement>(null);
  const cycle = useRef<Cycle>(null);
  useEffect(() => input.current?.focus(), [conversation.name]);
  const candidates = () => {
    const nicks = [...conversation.members, ...(conversation.room ? [] : [conversation.name])];
    for (const other of chat.conversations.values()) if (!other.room) nicks.push(other.name);
    for (const line of [...conversation.lines].reverse()) if (line.kind === "message") nicks.push(line.sender);
    return {
      commands: Object.keys(COMMANDS).sort(),
      rooms: [...chat.conversations.values()].filter((c) => c.room).map((c) => c.name),
      nicks: nicks.filter((nick) => nick !== chat.nick),
    };
  };
  return (
    <form
      class="compose"
      onSubmit={(event) => {
        event.preventDefault();
        const line = text;
        if (!line.trim()) return;
        setText("");
        cycle.current = null;
        runLine(chat, line).catch((e: Error) => chat.info(e.message, true));
      }}
    >
      <label class="visually-hidden" for="compose">
        Message to {conversation.name}
      </label>
      <input
        id="compose"
        ref={input}
        autoComplete="off"
        maxLength={4000}
        placeholder={`Message ${conversation.name} (or /help)`}
        value={text}
        onKeyDown={(event) => {
          if (event.key !== "Tab" || event.shiftKey || event.altKey || event.ctrlKey) {
            if (event.key !== "Shift") cycle.current = null;
            return;
          }
          const element = event.currentTarget;
          const done = complete(element.value, element.selectionStart ?? element.value.length, candidates(), cycle.current);
          if (done === null) return; // nothing to complete: Tab moves the focus as usual
          event.preventDefault();
          cycle.current = done.cycle;
          element.value = done.completion.value;
          element.setSelectionRange(done.completion.caret, done.completion.caret);
          setText(done.completion.value);
        }}
        onInput={(e) => setText(e.currentTarget.value)}
      />
      <button type="submit">Send</button>
    </form>
  );
}

function LineView({ line }: { line: Line }) {
  if (line.kind === "info") {
    return <li class={line.error ? "info error" : "info"}>{line.text}</li>;
  }
  const pending = line.kind === "pending";
  const time = pending ? "…" : new Date(line.ts).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  const key = pending ? undefined : line.key;
  const state = pending ? <span class="pending-note"> (waiting to be sent)</span> : null;
  if (line.text.startsWith("/me ")) {
    return (
      <li class={pending ? "message action pending" : "message action"} data-key={key}>
        <time>{time}</time> * <bdi class="sender">{line.sender}</bdi> <RichText text={line.text.slice(4)} />
        {state}
      </li>
    );
  }
  return (
    <li class={pending ? "message pending" : "message"} data-key={key}>
      <time>{time}</time> <bdi class="sender">{line.sender}</bdi>: <RichText text={line.text} />
      {state}
    </li>
  );
}
