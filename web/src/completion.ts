// Tab completion in the message box: a command name at the start of the line, a room after
// "#", else a nickname ("Ann: " at the start of a line, "Ann " elsewhere). Tab again cycles.

export type Completion = { value: string; caret: number };

export type Candidates = { commands: string[]; rooms: string[]; nicks: string[] };

// The state between two Tabs: what was typed, and which match was offered last.
export type Cycle = { typed: string; caret: number; index: number } | null;

function matching(options: string[], prefix: string): string[] {
  const lower = prefix.toLowerCase();
  const seen = new Set<string>();
  return options.filter((option) => {
    const key = option.toLowerCase();
    if (!key.startsWith(lower) || seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

// The completion of ``value`` at ``caret``, or null when there is nothing to complete (then
// Tab moves the focus on, as it does elsewhere).
export function complete(
  value: string,
  caret: number,
  candidates: Candidates,
  cycle: Cycle,
): { completion: Completion; cycle: Cycle } | null {
  const typed = cycle ? cycle.typed : value;
  const at = cycle ? cycle.caret : caret;
  const before = typed.slice(0, at);
  const start = before.search(/\S*$/);
  const word = before.slice(start);
  if (!word) return null;
  let options: string[];
  let suffix: string;
  if (start === 0 && word.startsWith("/") && !word.startsWith("//")) {
    options = matching(candidates.commands, word.slice(1)).map((name) => `/${name}`);
    suffix = " ";
  } else if (word.startsWith("#")) {
    options = matching(candidates.rooms, word);
    suffix = " ";
  } else {
    options = matching(candidates.nicks, word.replace(/^@/, "")).map((nick) => (word.startsWith("@") ? `@${nick}` : nick));
    suffix = start === 0 ? ": " : " ";
  }
  if (options.length === 0) return null;
  const index = cycle ? (cycle.index + 1) % options.length : 0;
  const inserted = options[index] + suffix;
  const after = typed.slice(at);
  return {
    completion: { value: typed.slice(0, start) + inserted + after, caret: start + inserted.length },
    cycle: { typed, caret: at, index },
  };
}
