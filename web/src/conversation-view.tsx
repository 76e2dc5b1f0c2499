// The open conversation: its title, the messages (a role="log" live region that loads older
// ones when scrolled up and keeps the reader's place), the members, and the message box.
// Text from the server goes into the page only as text nodes, never as HTML.

import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import { Chat, Conversation, Line, memberCount } from "./chat";
import { COMMANDS, runLine } from "./commands";
import { Cycle, complete } from "./completion";
import { FileNoticeLine } from "./file_ui";
import { fileNotice } from "./files";
import { RichText } from "./richtext";

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

export function ConversationView({ chat, conversation }: { chat: Chat; conversation: Conversation }) {
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
  const count = memberCount(conversation);
  const unlisted = count - conversation.members.length;
  return (
    <div class={members ? "conversation members-open" : "conversation"}>
      <h2 class="title">
        <bdi>{conversation.name}</bdi>
        {conversation.room ? <span class="topic member-count">{count === 1 ? "1 member" : `${count} members`}</span> : null}
        {conversation.topic ? <span class="topic">{conversation.topic}</span> : null}
        {presence ? <span class="topic presence-text">{presence}</span> : null}
      </h2>
      {conversation.room ? (
        <button
          type="button"
          class="members-toggle"
          aria-expanded={members}
          aria-controls="members"
          onClick={() => {
            setMembers(!members);
            chat.showMembers(!members);
          }}
        >
          Members ({count})
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
          <h3>Members ({count})</h3>
          {conversation.quiet && conversation.summary ? <p class="summary">{conversation.summary}</p> : null}
          <ul class="members">
            {conversation.members.map((member) => (
              <li key={member}>
                <button
                  type="button"
                  title={`Private conversation with ${member}`}
                  onClick={() => {
                    setMembers(false);
                    chat.showMembers(false);
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
          {conversation.quiet && !conversation.allMembers && unlisted > 0 ? (
            <p class="more-members">
              and {unlisted} more{" "}
              <button type="button" onClick={() => void chat.loadMembers(conversation.name, true)}>
                Show all {count}
              </button>
            </p>
          ) : null}
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
  const notice = line.kind === "message" ? fileNotice(line.text) : null;
  if (notice && line.kind === "message") return <FileNoticeLine line={line} notice={notice} />;
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
