// The page: a login form, then the conversations, the open one's messages and members.
// Text from the server goes into the page only as text nodes (JSX children), never as HTML.

import { useEffect, useReducer, useRef, useState } from "preact/hooks";
import { Chat, Conversation, Line } from "./chat";
import { runLine } from "./commands";
import { FileNoticeLine } from "./file_ui";
import { fileNotice } from "./files";
import { LoginPanel, LogoutButton } from "./login";
import { Status } from "./connection";

export function App({ chat }: { chat: Chat }) {
  const [, redraw] = useReducer((n: number, _: undefined) => n + 1, 0);
  useEffect(() => chat.subscribe(() => redraw(undefined)), [chat]);
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
  return (
    <div class="chat">
      <header>
        <h1>Parley</h1>
        <span class="me">{chat.nick}</span>
        <StatusLine status={status} />
        <LogoutButton chat={chat} />
      </header>
      <Sidebar chat={chat} />
      <main>{current ? <ConversationView chat={chat} conversation={current} /> : <p>Join a room: /join #room</p>}</main>
    </div>
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
  return <LoginPanel chat={chat} notice={status.kind === "closed" ? status.reason : ""} />;
}

function Sidebar({ chat }: { chat: Chat }) {
  const [room, setRoom] = useState("");
  const [error, setError] = useState("");
  const conversations = [...chat.conversations.entries()];
  return (
    <nav aria-label="Conversations">
      <h2>Conversations</h2>
      <ul class="conversations">
        {conversations.map(([key, conversation]) => (
          <li key={key}>
            <button
              type="button"
              aria-current={key === chat.current ? "page" : undefined}
              onClick={() => chat.show(conversation.name)}
            >
              {conversation.name}
            </button>
          </li>
        ))}
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
            <button type="button" onClick={() => chat.join(r.room).catch((e: Error) => setError(e.message))}>
              {r.room} ({r.members})
            </button>
            {r.topic ? <span class="topic">{r.topic}</span> : null}
          </li>
        ))}
      </ul>
    </nav>
  );
}

function ConversationView({ chat, conversation }: { chat: Chat; conversation: Conversation }) {
  const [text, setText] = useState("");
  const log = useRef<HTMLOListElement>(null);
  const input = useRef<HTMLInputElement>(null);
  const atBottom = useRef(true);
  useEffect(() => {
    const element = log.current;
    if (element && atBottom.current) element.scrollTop = element.scrollHeight;
  });
  useEffect(() => input.current?.focus(), [conversation.name]);
  return (
    <div class="conversation">
      <h2 class="title">
        {conversation.name}
        {conversation.topic ? <span class="topic">{conversation.topic}</span> : null}
      </h2>
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
        }}
      >
        {conversation.lines.map((line) => (
          <LineView key={line.key} line={line} />
        ))}
      </ol>
      {conversation.room ? (
        <aside aria-label="Members">
          <h3>Members ({conversation.members.length})</h3>
          <ul class="members">
            {conversation.members.map((member) => (
              <li key={member}>
                <button type="button" title={`Private conversation with ${member}`} onClick={() => chat.show(member)}>
                  {member}
                </button>
              </li>
            ))}
          </ul>
        </aside>
      ) : null}
      <form
        class="compose"
        onSubmit={(event) => {
          event.preventDefault();
          const line = text;
          if (!line.trim()) return;
          setText("");
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
          onInput={(e) => setText(e.currentTarget.value)}
        />
        <button type="submit">Send</button>
      </form>
    </div>
  );
}

function LineView({ line }: { line: Line }) {
  const notice = line.kind === "message" ? fileNotice(line.text) : null;
  if (notice && line.kind === "message") return <FileNoticeLine line={line} notice={notice} />;
  if (line.kind === "info") {
    return <li class={line.error ? "info error" : "info"}>{line.text}</li>;
  }
  const time = new Date(line.ts).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  if (line.text.startsWith("/me ")) {
    return (
      <li class="message action">
        <time>{time}</time> * <span class="sender">{line.sender}</span> {line.text.slice(4)}
      </li>
    );
  }
  return (
    <li class="message">
      <time>{time}</time> <span class="sender">{line.sender}</span>: <span class="text">{line.text}</span>
    </li>
  );
}
