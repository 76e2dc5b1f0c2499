// The page: a login form, then the header, the side bar and the open conversation.
// Text from the server goes into the page only as text nodes (JSX children), never as HTML.

import { useEffect, useLayoutEffect, useReducer, useState } from "preact/hooks";
import { showBadge } from "./badge";
import { Chat } from "./chat";
import { Status } from "./connection";
import { ConversationView } from "./conversation-view";
import { LoginPanel, LogoutButton } from "./login";
import { Permission, askPermission, permission } from "./notify";
import { Sidebar } from "./sidebar";
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
          <LogoutButton chat={chat} />
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
    case "moving":
      text = "This server is going away: finishing what was sent, then moving to another server…";
      break;
    case "waiting":
      text = status.moving
        ? `Moving to another server in ${status.seconds} s`
        : `Connection lost; trying again in ${status.seconds} s (attempt ${status.attempt + 1})`;
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
