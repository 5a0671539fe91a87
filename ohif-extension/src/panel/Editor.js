// The draft editor. Typing autosaves (debounced) as a new version on top of the version edited;
// if someone saved in between, the server answers 409 stale and we show both texts to choose from.
import { html, useEffect, useRef, useState } from '../vendor.js';
import { api, reportUrl } from '../api.js';

const DEBOUNCE_MS = 1500;

/** Lines of `a` that `b` lacks: what a reader must compare; the shared lines stay in the full texts. */
const onlyIn = (a, b) => {
  const other = new Set(b.split('\n').map((l) => l.trim()));
  return a.split('\n').filter((l) => l.trim() && !other.has(l.trim())).join('\n') || '(no lines of its own)';
};

export function Editor({ uid, report, editorRef, onChanged }) {
  const current = report.current;
  const [text, setText] = useState(current?.text ?? '');
  const [base, setBase] = useState(current?.number ?? null);
  const [state, setState] = useState('saved'); // saved | dirty | saving | stale | locked | error
  const [conflict, setConflict] = useState(null); // {yours, theirs: {number, text, author}}
  const [message, setMessage] = useState('');
  const timer = useRef(null);
  const live = useRef({});
  live.current = { text, base, state };

  // The draft can arrive after the panel opened (job still running): take it if nothing was typed.
  useEffect(() => {
    if (current && live.current.state === 'saved' && current.number !== live.current.base) {
      setText(current.text);
      setBase(current.number);
    }
  }, [current?.number]);

  const save = async () => {
    clearTimeout(timer.current);
    const { text: body, base: on, state: now } = live.current;
    if (now !== 'dirty') return on;
    setState('saving');
    const { ok, status, data } = await api(`${reportUrl(uid)}/versions`, { method: 'POST', body: { text: body, base_number: on } });
    if (ok) {
      setBase(data.version.number);
      live.current.base = data.version.number;
      // Typing during the request keeps it dirty; the next debounce saves that too.
      setState(live.current.text === body ? 'saved' : 'dirty');
      setMessage(`Saved as version ${data.version.number}`);
      onChanged?.();
      return data.version.number;
    }
    if (status === 409 && data?.error === 'stale') {
      setConflict({ yours: data.your_text ?? body, theirs: data.current });
      setState('stale');
    } else if (status === 409 && data?.error === 'locked') {
      setState('locked');
      setMessage(data.detail || 'The report is signed.');
      onChanged?.();
    } else {
      setState('error');
      setMessage(data?.detail || `Save failed (${status})`);
    }
    return null;
  };
  if (editorRef) editorRef.current = { flush: save, state: () => live.current.state };

  const onInput = (event) => {
    setText(event.target.value);
    live.current.text = event.target.value;
    if (live.current.state === 'stale' || live.current.state === 'locked') return;
    setState('dirty');
    live.current.state = 'dirty';
    clearTimeout(timer.current);
    timer.current = setTimeout(save, DEBOUNCE_MS);
  };
  useEffect(() => () => clearTimeout(timer.current), []);

  const keepMine = () => {
    setBase(conflict.theirs.number);
    setText(conflict.yours);
    live.current = { text: conflict.yours, base: conflict.theirs.number, state: 'dirty' };
    setConflict(null);
    setState('dirty');
    save();
  };
  const takeTheirs = () => {
    setBase(conflict.theirs.number);
    setText(conflict.theirs.text);
    setConflict(null);
    setState('saved');
    setMessage(`Loaded version ${conflict.theirs.number}`);
    onChanged?.();
  };

  const readOnly = report.locked || !report.permissions?.edit || state === 'locked';
  const label = { saved: message || (base != null ? `Version ${base}` : 'No draft yet'), dirty: 'Unsaved changes…',
    saving: 'Saving…', stale: 'Someone saved a newer version', locked: message, error: message }[state];
  return html`<section>
    <h4>Report <span class="sa-muted" data-testid="version-label">${report.locked
      ? `signed version ${report.signed_number} by ${report.signed_by}` : label}</span></h4>
    ${!current && !report.locked && html`<p class="sa-muted">The AI draft appears here when the analysis finishes.</p>`}
    <textarea class="sa-editor" data-testid="report-text" rows="16" value=${report.locked ? current?.text ?? text : text}
      readOnly=${readOnly} onInput=${onInput} spellcheck="true"></textarea>
    ${conflict && html`<div class="sa-conflict" data-testid="stale">
      <p>Version ${conflict.theirs.number}${conflict.theirs.author ? ` by ${conflict.theirs.author}` : ''} was saved while you edited.</p>
      <div class="sa-two">
        <div><b>Only in your text</b><pre data-testid="stale-yours">${onlyIn(conflict.yours, conflict.theirs.text)}</pre></div>
        <div><b>Only in version ${conflict.theirs.number}</b><pre data-testid="stale-theirs">${onlyIn(conflict.theirs.text, conflict.yours)}</pre></div>
      </div>
      <details><summary class="sa-muted">Both full texts</summary><div class="sa-two">
        <pre>${conflict.yours}</pre><pre>${conflict.theirs.text}</pre></div></details>
      <button onClick=${keepMine}>Keep mine (save as newer version)</button>
      <button onClick=${takeTheirs}>Use version ${conflict.theirs.number}</button>
    </div>`}
  </section>`;
}
