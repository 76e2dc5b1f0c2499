// The side bar: the conversations with their unread badges, joining a room, the server's rooms.

import { useState } from "preact/hooks";
import { Chat, Conversation, conversationKey } from "./chat";

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

export function Sidebar({ chat, close }: { chat: Chat; close: () => void }) {
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
