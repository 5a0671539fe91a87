// Unsaved report text kept in this tab's sessionStorage on every keystroke, so a reload, a crash or a lost
// connection before the save loses nothing: the editor offers it back on the next open. Removed once saved.
// sessionStorage, not localStorage: it dies with the tab and is never shared with another user of the browser.

const key = (uid) => `spineagent:unsaved:${uid}`;

/** Remember `text` typed on top of version `base` (whose text was `baseText`). */
export function keep(uid, { text, base, baseText }) {
  try {
    sessionStorage.setItem(key(uid), JSON.stringify({ text, base, baseText, at: new Date().toISOString() }));
  } catch { /* storage full or disabled: the save itself is the only copy then */ }
}

/** The kept unsaved text, or null. */
export function recall(uid) {
  try {
    const value = JSON.parse(sessionStorage.getItem(key(uid)) || 'null');
    return value && typeof value.text === 'string' ? value : null;
  } catch {
    return null;
  }
}

export function forget(uid) {
  try { sessionStorage.removeItem(key(uid)); } catch { /* nothing kept */ }
}
