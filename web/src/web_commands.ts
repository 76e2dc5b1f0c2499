// The slash commands that need the web port's HTTPS side: files, and the account (whose
// session is this browser's cookie).

import type { Chat } from "./chat";
import type { Command } from "./commands";
import { SharedFile, shelf, uploads } from "./file_ui";
import { downloadFile } from "./files";
import { logOutAndLeave } from "./login";
import { logIn } from "./session";

export const WEB_COMMANDS: Record<string, Command> = {
  files: {
    usage: "/files [#room|USER]",
    help: "the files shared with you (all, or in one conversation), to download",
    run: async (chat, args) => {
      const to = args.trim();
      const reply = await chat.request({ type: "files", ...(to ? { to } : {}) });
      shelf.show(reply.files as SharedFile[]);
    },
  },
  get: {
    usage: "/get FILE_ID",
    help: "download a file by its id",
    run: async (chat, args) => {
      const id = args.trim();
      if (!/^[0-9a-f]{32}$/.test(id)) throw new Error("Usage: /get FILE_ID (32 hex digits, from /files)");
      await downloadFile(chat, id);
    },
  },
  share: {
    usage: "/share",
    help: "share a file here (or drop or paste one on the conversation)",
    run: async (chat) => pickFiles(chat),
  },
  register: {
    usage: "/register PASSWORD",
    help: "make your guest nickname an account, and stay logged in in this browser",
    run: async (chat, args) => {
      const password = args.trim();
      if (!password) throw new Error("Usage: /register PASSWORD");
      await chat.request({ type: "register", password });
      // The session goes into this browser's cookie, as a login does.
      await logIn(chat.nick, password);
      chat.info(`${chat.nick} is now an account; this browser stays logged in.`);
    },
  },
  logout: {
    usage: "/logout",
    help: "end this browser's saved login and leave",
    run: (chat) => logOutAndLeave(chat),
  },
  passwd: {
    usage: "/passwd OLD NEW",
    help: "change your password (your other logins end; this browser stays logged in)",
    run: async (chat, args) => {
      const [old, fresh, ...rest] = args.trim().split(/\s+/);
      if (!old || !fresh || rest.length) throw new Error("Usage: /passwd OLD NEW");
      await chat.request({ type: "passwd", old, new: fresh });
      await logIn(chat.nick, fresh);
      chat.info("Password changed.");
    },
  },
};

function pickFiles(chat: Chat): Promise<void> {
  const to = chat.conversations.get(chat.current)?.name;
  if (!to) return Promise.reject(new Error("Open a room or conversation first."));
  const input = document.createElement("input");
  input.type = "file";
  input.multiple = true;
  input.onchange = () => {
    for (const file of Array.from(input.files ?? [])) uploads.start(chat, to, file);
  };
  input.click();
  return Promise.resolve();
}
