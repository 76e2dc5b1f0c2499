// Desktop notifications (the Notification API): asked for on a click, shown for a message that
// arrives while the tab is hidden, or that names you in a conversation you are not looking at.

export type Permission = NotificationPermission | "unsupported";

export function permission(): Permission {
  return "Notification" in window ? Notification.permission : "unsupported";
}

// Must run in a user gesture (a click): browsers refuse or ignore the request otherwise.
export async function askPermission(): Promise<Permission> {
  if (!("Notification" in window)) return "unsupported";
  return Notification.requestPermission();
}

export function notify(title: string, body: string, tag: string, onClick: () => void): void {
  if (permission() !== "granted") return;
  try {
    // One per conversation (tag): a new message replaces the last one instead of piling up.
    const shown = new Notification(title, { body, tag });
    shown.onclick = () => {
      window.focus();
      onClick();
      shown.close();
    };
  } catch {
    // Some browsers allow notifications only from a service worker: the badge still shows.
  }
}
