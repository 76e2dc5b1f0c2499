// The terminal client's slash commands (docs/commands.md) that map to protocol requests.

import { Chat, Conversation } from "./chat";
import { WEB_COMMANDS } from "./web_commands";

export type Command = { usage: string; help: string; run: (chat: Chat, args: string) => Promise<void> };

function words(args: string, count: number): string[] {
  // The first count - 1 words, then the rest of the line as one.
  const parts: string[] = [];
  let rest = args.trim();
  while (parts.length < count - 1 && rest) {
    const space = rest.search(/\s/);
    if (space < 0) break;
    parts.push(rest.slice(0, space));
    rest = rest.slice(space).trim();
  }
  if (rest) parts.push(rest);
  return parts;
}

function here(chat: Chat): Conversation | undefined {
  return chat.conversations.get(chat.current);
}

function currentRoom(chat: Chat, given: string): string {
  if (given) return given;
  const conversation = here(chat);
  if (conversation?.room) return conversation.name;
  throw new Error("Name a room, like #general.");
}

// "30m", "2h", "1h30m", "7d", "1w" in seconds, as the terminal client reads them; null when
// it is not one, or outside 1 s to ten years (the protocol's bound).
const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400, w: 7 * 86400 };
const MAX_SECONDS = 10 * 365 * 86400;

export function parseDuration(text: string): number | null {
  if (text.length > 40 || !/^(?:[0-9]{1,9}[smhdw])+$/.test(text)) return null;
  let seconds = 0;
  for (const [, count, unit] of text.matchAll(/([0-9]{1,9})([smhdw])/g)) seconds += Number(count) * UNIT_SECONDS[unit];
  return seconds >= 1 && seconds <= MAX_SECONDS ? seconds : null;
}

function moderation(type: string, help: string, options: { duration?: boolean; reason?: boolean }): Command {
  const usage = `/${type} #room USER${options.duration ? " [DURATION]" : ""}${options.reason ? " [REASON]" : ""}`;
  return {
    usage,
    help,
    run: async (chat, args) => {
      const [room, nick, ...rest] = args.trim().split(/\s+/);
      if (!room?.startsWith("#") || !nick) throw new Error(`Usage: ${usage}`);
      const frame: Record<string, unknown> = { type, room, nick };
      // A word that starts with a digit is meant as a duration: a wrong one is refused, not
      // taken as the reason's first word.
      if (options.duration && rest.length && /^[0-9]/.test(rest[0])) {
        const seconds = parseDuration(rest[0]);
        if (seconds === null) throw new Error(`Usage: ${usage}; DURATION like 30m, 2h, 7d or 1h30m`);
        frame.seconds = seconds;
        rest.shift();
      }
      if (rest.length && !options.reason) throw new Error(`Usage: ${usage}`);
      if (rest.length) frame.reason = rest.join(" ");
      await chat.request(frame as { type: string });
      chat.info(`Done: ${type} ${nick} in ${room}.`);
    },
  };
}

export const COMMANDS: Record<string, Command> = {
  list: {
    usage: "/list",
    help: "who is online",
    run: async (chat) => {
      const reply = await chat.pages({ type: "list" }, "users");
      chat.info(`Online (${String(reply.total)}): ${(reply.users as string[]).join(", ")}`);
    },
  },
  join: {
    usage: "/join #room",
    help: "join (or create) a room and see its recent messages",
    run: async (chat, args) => {
      const room = args.trim();
      if (!room) throw new Error("Usage: /join #room");
      await chat.join(room.startsWith("#") ? room : `#${room}`);
    },
  },
  part: {
    usage: "/part [#room]",
    help: "leave a room",
    run: async (chat, args) => chat.part(currentRoom(chat, args.trim())),
  },
  msg: {
    usage: "/msg #room|USER MESSAGE",
    help: "a message to a room you are in, or privately",
    run: async (chat, args) => {
      const [to, text] = words(args, 2);
      if (!to || !text) throw new Error("Usage: /msg #room|USER MESSAGE");
      chat.send(to, text);
    },
  },
  pm: {
    usage: "/pm USER MESSAGE",
    help: "a private message only USER sees",
    run: async (chat, args) => {
      const [to, text] = words(args, 2);
      if (!to || !text || to.startsWith("#")) throw new Error("Usage: /pm USER MESSAGE");
      chat.send(to, text);
      chat.show(to);
    },
  },
  query: {
    usage: "/query [USER]",
    help: "a private conversation with USER (alone: back to a room)",
    run: async (chat, args) => {
      const user = args.trim();
      if (user) {
        chat.show(user);
        return;
      }
      const room = [...chat.conversations.values()].find((c) => c.room);
      if (room) chat.show(room.name);
    },
  },
  me: {
    usage: "/me ACTION",
    help: "an action: /me waves reads * you waves",
    run: async (chat, args) => {
      const conversation = here(chat);
      if (!conversation || !args.trim()) throw new Error("Usage: /me ACTION");
      chat.send(conversation.name, `/me ${args.trim()}`);
    },
  },
  rooms: {
    usage: "/rooms [#after]",
    help: "rooms with member counts and topics, a page at a time",
    run: async (chat, args) => {
      const after = args.trim();
      const reply = await chat.request({ type: "rooms", ...(after ? { after } : {}) });
      const rooms = reply.rooms as { room: string; members: number; topic?: string }[];
      chat.info(`Rooms (${String(reply.total)}):`);
      for (const r of rooms) chat.info(`  ${r.room} (${r.members})${r.topic ? ` ${r.topic}` : ""}`);
      if (reply.next) chat.info(`More: /rooms ${String(reply.next)}`);
    },
  },
  who: {
    usage: "/who [#room]",
    help: "who is in a room",
    run: async (chat, args) => {
      const room = currentRoom(chat, args.trim());
      const reply = await chat.pages({ type: "who", room, limit: 1000 }, "users");
      const users = reply.users as string[];
      chat.info(`In ${room} (${Number(reply.total ?? users.length)}): ${users.join(", ")}`);
    },
  },
  topic: {
    usage: "/topic [#room] [TEXT]",
    help: "read or set a room's topic",
    run: async (chat, args) => {
      const [first, rest] = words(args, 2);
      const named = first?.startsWith("#") ?? false;
      const room = currentRoom(chat, named ? first : "");
      const text = named ? rest : args.trim();
      if (text) {
        await chat.request({ type: "topic", room, text });
      } else {
        const reply = await chat.request({ type: "topic", room });
        chat.info(reply.topic ? `Topic of ${room}: ${String(reply.topic)} (set by ${String(reply.topic_by)})` : `${room} has no topic.`);
      }
    },
  },
  history: {
    usage: "/history",
    help: "earlier messages in this conversation (again: further back; or scroll up)",
    run: async (chat) => {
      const conversation = here(chat);
      if (!conversation) throw new Error("Open a conversation first.");
      const count = await chat.loadOlder(conversation.name);
      if (count === 0) chat.info("No earlier messages.");
    },
  },
  away: {
    usage: "/away [TEXT]",
    help: "say you are away (alone: back)",
    run: async (chat, args) => {
      await chat.request({ type: "away", text: args.trim() });
      chat.away = args.trim();
      chat.info(args.trim() ? `You are away: ${args.trim()}` : "You are back.");
    },
  },
  whois: {
    usage: "/whois USER",
    help: "who a user is, where, since when",
    run: async (chat, args) => {
      const nick = args.trim();
      if (!nick) throw new Error("Usage: /whois USER");
      const r = await chat.request({ type: "whois", nick });
      const parts = [`${String(r.nick)}: ${r.online ? "online" : "offline"}`, r.account ? "account" : "guest"];
      if (r.role) parts.push(String(r.role));
      if (r.away) parts.push(`away: ${String(r.away)}`);
      if (Array.isArray(r.rooms)) parts.push(`in ${r.rooms.join(", ")}`);
      chat.info(parts.join("; "));
    },
  },
  unread: {
    usage: "/unread",
    help: "rooms and conversations with unread messages (accounts)",
    run: async (chat) => {
      const reply = await chat.pages({ type: "unread" }, "conversations");
      const list = reply.conversations as { to: string; count: number }[];
      chat.info(list.length ? list.map((c) => `${c.to} (${c.count})`).join(", ") : "Nothing unread.");
    },
  },
  kick: moderation("kick", "take USER out of a room (operators and moderators)", { reason: true }),
  ban: moderation("ban", "keep USER out; DURATION like 30m, 2h, 7d (none: until /unban)", { duration: true, reason: true }),
  unban: moderation("unban", "lift a ban", {}),
  mute: moderation("mute", "USER may read but not write; DURATION like 30m (none: until /unmute)", { duration: true, reason: true }),
  unmute: moderation("unmute", "lift a mute", {}),
  op: moderation("op", "make the account USER an operator of the room (server moderators)", {}),
  close: {
    usage: "/close",
    help: "close this conversation (a room: leave it)",
    run: async (chat) => {
      const conversation = here(chat);
      if (!conversation) return;
      if (conversation.room) await chat.part(conversation.name);
      else chat.forget(conversation.name);
    },
  },
  win: {
    usage: "/win N",
    help: "show conversation N of the list (also /window; Alt+Up and Alt+Down step through them)",
    run: async (chat, args) => {
      const number = Number(args.trim());
      const list = chat.ordered();
      if (!Number.isInteger(number) || number < 1 || number > list.length) {
        throw new Error(`Usage: /win N, with N from 1 to ${list.length}`);
      }
      chat.show(list[number - 1].name);
    },
  },
  ignore: {
    usage: "/ignore [USER]",
    help: "hide USER's messages in this browser (alone: the list)",
    run: async (chat, args) => {
      const nick = args.trim();
      if (!nick) {
        chat.info(chat.ignored.size ? `Ignored: ${[...chat.ignored].join(", ")}` : "You ignore nobody.");
        return;
      }
      chat.ignore(nick, true);
      chat.info(`Ignoring ${nick}: their messages are hidden in this browser (/unignore ${nick} to undo).`);
    },
  },
  unignore: {
    usage: "/unignore USER",
    help: "show USER's messages again",
    run: async (chat, args) => {
      const nick = args.trim();
      if (!nick) throw new Error("Usage: /unignore USER");
      chat.ignore(nick, false);
      chat.info(`${nick}'s messages show again (earlier ones: reopen the conversation).`);
    },
  },
  clear: {
    usage: "/clear",
    help: "empty this conversation's window",
    run: async (chat) => {
      const conversation = here(chat);
      if (!conversation) return;
      conversation.lines = [];
      chat.changed();
    },
  },
  window: { usage: "/window N", help: "the same as /win N", run: (chat, args) => COMMANDS.win.run(chat, args) },
  quit: { usage: "/quit", help: "leave", run: (chat) => chat.quit() },
  exit: { usage: "/exit", help: "leave", run: (chat) => chat.quit() },
  ...WEB_COMMANDS,
  help: {
    usage: "/help [COMMAND]",
    help: "the list of commands, or how to use one",
    run: async (chat, args) => {
      const one = COMMANDS[args.trim().replace(/^\//, "")];
      if (one) {
        chat.info(`${one.usage}: ${one.help}`);
        return;
      }
      for (const command of Object.values(COMMANDS)) chat.info(`${command.usage}: ${command.help}`);
    },
  },
};

// A line typed in the input: a command, or a message to the open conversation ("//" escapes).
export async function runLine(chat: Chat, line: string): Promise<void> {
  if (line.startsWith("/") && !line.startsWith("//")) {
    const space = line.search(/\s/);
    const name = (space < 0 ? line.slice(1) : line.slice(1, space)).toLowerCase();
    const command = COMMANDS[name];
    if (!command) {
      const near = Object.keys(COMMANDS).find((known) => known.startsWith(name.slice(0, 2)));
      throw new Error(`Unknown command /${name}.${near ? ` Did you mean /${near}?` : ""} Type /help for the list.`);
    }
    await command.run(chat, space < 0 ? "" : line.slice(space + 1));
    return;
  }
  const conversation = here(chat);
  if (!conversation) throw new Error("Join a room first: /join #room");
  // Spaces at the end (a completion leaves one) are not part of the message.
  const text = line.trimEnd();
  chat.send(conversation.name, text.startsWith("//") ? text.slice(1) : text);
}
