// The login page: a guest's nickname, or an account's nickname and password checked by the
// server's /login (or a new account by /register), which keeps the session in an HttpOnly
// cookie. The WebSocket then logs in with the nickname alone.

import { useState } from "preact/hooks";
import { Chat } from "./chat";
import { createAccount, logIn, logOut, savedLogin } from "./session";

// Log in again with this browser's saved session, if it has one.
export async function resumeSavedLogin(chat: Chat): Promise<void> {
  const nick = await savedLogin();
  if (nick && !chat.nick) chat.connect({ nick, password: "" });
}

export function LoginPanel({ chat, notice }: { chat: Chat; notice: string }) {
  const [nick, setNick] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);

  async function enter(create: boolean): Promise<void> {
    const name = nick.trim();
    if (!name) return;
    setError("");
    if (!password && !create) {
      chat.connect({ nick: name, password: "" }); // a guest
      return;
    }
    setBusy(true);
    try {
      const stored = create ? await createAccount(name, password) : await logIn(name, password);
      setPassword("");
      chat.connect({ nick: stored, password: "" });
    } catch (e) {
      setError((e as Error).message);
    } finally {
      setBusy(false);
    }
  }

  return (
    <main class="login">
      <h1>Parley</h1>
      <form
        onSubmit={(event) => {
          event.preventDefault();
          void enter(false);
        }}
      >
        <label>
          Nickname
          <input name="nick" autoFocus required autoComplete="username" value={nick} onInput={(e) => setNick(e.currentTarget.value)} />
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
        <div class="choices">
          <button type="submit" disabled={busy}>
            Log in
          </button>
          <button type="button" disabled={busy || !password} onClick={() => void enter(true)}>
            Create account
          </button>
        </div>
      </form>
      {error ? (
        <p class="error" role="alert">
          {error}
        </p>
      ) : notice ? (
        // Why the chat connection ended (a refused nickname, a password needed).
        <p class="status status-closed" role="status" data-status="closed">
          {notice}
        </p>
      ) : null}
    </main>
  );
}

// End this browser's session (on the server, and its cookie), then leave the chat.
export async function logOutAndLeave(chat: Chat): Promise<void> {
  try {
    await logOut();
  } catch {
    // Leaving anyway; the session ends when it expires.
  }
  await chat.quit();
}

export function LogoutButton({ chat }: { chat: Chat }) {
  return (
    <button type="button" class="logout" onClick={() => void logOutAndLeave(chat)}>
      Log out
    </button>
  );
}
