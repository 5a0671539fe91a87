// Same-origin calls to our API with the Django session cookie; POSTs carry the CSRF token.

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : '';
}

/** fetch JSON; resolves to {ok, status, data} and never throws: an HTTP error is the caller's to read, a lost
 * connection is status 0 with `offline: true`. `keepalive` lets a save outlive the page (beforeunload). */
export async function api(path, { method = 'GET', body, keepalive = false } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET') headers['X-CSRFToken'] = csrfToken();
  let response;
  try {
    response = await fetch(path, {
      method, headers, credentials: 'same-origin', keepalive, body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    return { ok: false, status: 0, offline: true, data: { detail: `No connection to the server (${error.message})` } };
  }
  const data = await response.json().catch(() => null);
  return { ok: response.ok, status: response.status, data };
}

export const reportUrl = (uid) => `/api/studies/${encodeURIComponent(uid)}/report`;
