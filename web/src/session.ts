// The login in this browser: an HttpOnly cookie set by the server's /login and /register
// (docs/web.md, "Logging in"). Script on the page never holds the session token; it only asks
// who the cookie belongs to, and the WebSocket's login uses the cookie by itself.

export class HttpRequestError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

// A JSON request to the server itself; its JSON error as an HttpRequestError.
export async function askServer(method: string, path: string, body?: unknown): Promise<Record<string, unknown>> {
  let response: Response;
  try {
    response = await fetch(path, {
      method,
      credentials: "same-origin",
      headers: body === undefined ? {} : { "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new HttpRequestError(0, "not-connected", "The server cannot be reached; try again.");
  }
  let reply: Record<string, unknown> = {};
  try {
    reply = (await response.json()) as Record<string, unknown>;
  } catch {
    // Not JSON: the status alone says what happened.
  }
  if (!response.ok) {
    const message = typeof reply.message === "string" ? reply.message : `The server answered ${response.status}.`;
    throw new HttpRequestError(response.status, String(reply.code ?? "error"), message);
  }
  return reply;
}

// The account this browser is logged in as, or "" (no cookie, or its session ended).
export async function savedLogin(): Promise<string> {
  try {
    const reply = await askServer("GET", "/session");
    return typeof reply.nick === "string" ? reply.nick : "";
  } catch {
    return "";
  }
}

// Check the password and keep the session in the cookie; returns the nickname as stored.
export async function logIn(nick: string, password: string): Promise<string> {
  return String((await askServer("POST", "/login", { nick, password })).nick);
}

// A new account for a nickname nobody has; logged in like logIn.
export async function createAccount(nick: string, password: string): Promise<string> {
  return String((await askServer("POST", "/register", { nick, password })).nick);
}

// End the session on the server and clear the cookie.
export async function logOut(): Promise<void> {
  await askServer("POST", "/logout");
}
