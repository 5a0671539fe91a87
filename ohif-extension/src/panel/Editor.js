// The report editor: a plain textarea (the browser's own editing, undo and spell check) over a backdrop that
// marks its sentences: a sentence linked to a finding is underlined, the one the cursor is in and the ones of
// the finding clicked in the list are highlighted. Moving the cursor into a sentence tells the panel, which
// highlights the finding and shows its box.
//
// No keystroke is lost: typing autosaves (debounced) as a new version on top of the version edited, and saves
// at once on blur, when the tab is hidden, when the panel unmounts (OHIF tab switch, route change) and on
// beforeunload (with the browser's leave-page prompt while anything is unsaved). Every keystroke is also kept
// in sessionStorage (pending.js) until saved, so a reload or a lost connection loses nothing. If someone saved
// in between, the server answers 409 stale and the three-way merge view opens (Merge.js).
import { html, useEffect, useRef, useState } from '../vendor.js';
import { api, reportUrl } from '../api.js';
import { Merge } from './Merge.js';
import * as pending from './pending.js';

const DEBOUNCE_MS = 1500;
const OFFLINE_RETRY_MS = 5000;
// Statuses in which the text on screen is not (yet) the saved version.
const UNSAVED = new Set(['dirty', 'saving', 'error', 'offline', 'stale', 'locked', 'claimed']);
const SAVABLE = new Set(['dirty', 'error', 'offline']);

/** The saved text's sentences moved onto the text on screen: sentences before and after the edit keep their
 * place, the one being edited keeps its links until the next save links it again. */
export function remap(linked, text) {
  if (!linked) return [];
  const old = linked.text;
  if (old === text) return linked.sentences;
  let p = 0;
  while (p < old.length && p < text.length && old[p] === text[p]) p++;
  let s = 0;
  while (s < old.length - p && s < text.length - p && old[old.length - 1 - s] === text[text.length - 1 - s]) s++;
  const delta = text.length - old.length;
  const editEnd = old.length - s;
  return linked.sentences.map((x) => {
    if (x.end <= p) return x;
    if (x.start >= editEnd) return { ...x, start: x.start + delta, end: x.end + delta };
    return { ...x, start: Math.min(x.start, p), end: Math.max(x.end + delta, p), edited: true };
  }).filter((x) => x.end > x.start);
}

function Backdrop({ text, sentences, active, highlighted, backdropRef }) {
  const parts = [];
  let at = 0;
  for (const s of [...sentences].sort((a, b) => a.start - b.start)) {
    if (s.start < at) continue;
    if (s.start > at) parts.push(text.slice(at, s.start));
    const conditions = s.links.map((l) => l.condition);
    const classes = ['sa-sent', s.links.length ? 'sa-sent-linked' : '', s.index === active ? 'sa-sent-active' : '',
      conditions.some((c) => highlighted.has(c)) ? 'sa-sent-finding' : ''].filter(Boolean).join(' ');
    parts.push(html`<span key=${s.index} class=${classes} data-index=${s.index}
      data-conditions=${[...new Set(conditions)].join(' ')}>${text.slice(s.start, s.end)}</span>`);
    at = s.end;
  }
  parts.push(text.slice(at));
  // A trailing newline needs a character after it to take its line in the backdrop as in the textarea.
  return html`<div class="sa-backdrop" ref=${backdropRef} aria-hidden="true" data-testid="sentence-marks">${parts} </div>`;
}

export function Editor({ uid, report, editorRef, onChanged, onSentence, highlighted, canEdit, fromScratch }) {
  const current = report.current;
  const [text, setText] = useState(current?.text ?? '');
  const [base, setBase] = useState(current?.number ?? null);
  const [status, setStatus] = useState('saved');
  const [message, setMessage] = useState('');
  const [conflict, setConflict] = useState(null); // {base, mine, theirs: {number, text, author}}
  const [linked, setLinked] = useState({ text: current?.text ?? '', sentences: report.sentences || [] });
  const [active, setActive] = useState(-1);
  const timer = useRef(null);
  const retryTimer = useRef(null);
  const inflight = useRef(null);
  const area = useRef(null);
  const backdrop = useRef(null);
  const live = useRef(null);
  if (!live.current) live.current = { text, base, baseText: current?.text ?? '', status };
  const set = (patch) => {
    Object.assign(live.current, patch);
    if ('text' in patch) setText(patch.text);
    if ('base' in patch) setBase(patch.base);
    if ('status' in patch) setStatus(patch.status);
  };

  // The draft can arrive after the panel opened (job still running): take it if nothing was typed.
  useEffect(() => {
    if (current && live.current.status === 'saved' && current.number !== live.current.base) {
      set({ text: current.text, base: current.number, baseText: current.text });
      setLinked({ text: current.text, sentences: report.sentences || [] });
    }
  }, [current?.number]);

  // Unsaved text this tab kept from before (reload, crash, lost connection): offer it back.
  useEffect(() => {
    const kept = pending.recall(uid);
    if (!kept || !canEdit) return;
    const saved = current?.text ?? '';
    if (kept.text === saved) return pending.forget(uid);
    if ((kept.base ?? null) === (current?.number ?? null)) {
      set({ text: kept.text, status: 'dirty' });
      setMessage(`Restored your unsaved text from ${new Date(kept.at).toLocaleTimeString()}`);
      timer.current = setTimeout(save, DEBOUNCE_MS);
    } else {
      set({ text: kept.text, status: 'stale' });
      setConflict({ base: kept.baseText ?? '', mine: kept.text, theirs: current });
      setMessage(`Restored your unsaved text; version ${current?.number} was saved since`);
    }
  }, []);

  const doSave = async (keepalive) => {
    const { text: body, base: on } = live.current;
    set({ status: 'saving' });
    const { ok, status: code, offline, data } = await api(`${reportUrl(uid)}/versions`,
      { method: 'POST', body: { text: body, base_number: on }, keepalive });
    if (ok) {
      const number = data.version.number;
      live.current.baseText = body;
      setLinked({ text: body, sentences: data.sentences || [] });
      const typedSince = live.current.text !== body; // typing during the request: save that too
      set({ base: number, status: typedSince ? 'dirty' : 'saved' });
      if (typedSince) {
        pending.keep(uid, live.current);
        timer.current = setTimeout(save, DEBOUNCE_MS);
      } else {
        pending.forget(uid);
      }
      setMessage(`Saved as version ${number}`);
      onChanged?.();
      return number;
    }
    if (offline) {
      set({ status: 'offline' });
      setMessage('Not saved: no connection to the server. Your text is kept in this tab and retried every 5 s.');
      clearTimeout(retryTimer.current);
      retryTimer.current = setTimeout(save, OFFLINE_RETRY_MS);
    } else if (code === 409 && data?.error === 'stale') {
      set({ status: 'stale' });
      setConflict({ base: live.current.baseText, mine: data.your_text ?? body, theirs: data.current });
    } else if (code === 409 && data?.error === 'locked') {
      set({ status: 'locked' });
      setMessage('The report was signed before this text was saved. Your text is kept: add what is missing as an addendum.');
      onChanged?.();
    } else if (code === 409 && data?.error === 'claimed') {
      set({ status: 'claimed' });
      setMessage(`${data.reader || 'Another radiologist'} took this report over; your text is not saved but kept in this tab.`);
      onChanged?.();
    } else {
      set({ status: 'error' });
      setMessage(`Not saved: ${data?.detail || `the server answered ${code}`}. Your text is kept in this tab.`);
    }
    return null;
  };

  /** Save now if anything is unsaved (waits for a save in flight first); the saved version's number. */
  const save = async ({ keepalive = false } = {}) => {
    clearTimeout(timer.current);
    if (inflight.current && !keepalive) await inflight.current;
    if (!SAVABLE.has(live.current.status)) return live.current.base;
    if (keepalive) return doSave(true);
    inflight.current = doSave(false);
    try {
      return await inflight.current;
    } finally {
      inflight.current = null;
    }
  };
  if (editorRef) editorRef.current = { flush: save, state: () => live.current.status };

  // Save on every way out: tab hidden, panel unmounted (OHIF tab switch, route change), page unload.
  useEffect(() => {
    const unsaved = () => UNSAVED.has(live.current.status);
    const onHide = () => { if (document.visibilityState === 'hidden') save({ keepalive: true }); };
    const onUnload = (event) => {
      if (!unsaved()) return undefined;
      save({ keepalive: true });
      event.preventDefault();
      event.returnValue = ''; // the browser's own "leave page?" prompt
      return '';
    };
    document.addEventListener('visibilitychange', onHide);
    window.addEventListener('beforeunload', onUnload);
    return () => {
      document.removeEventListener('visibilitychange', onHide);
      window.removeEventListener('beforeunload', onUnload);
      clearTimeout(timer.current);
      clearTimeout(retryTimer.current);
      if (SAVABLE.has(live.current.status)) save({ keepalive: true });
    };
  }, []);

  const sentences = remap(linked, text);
  const sentenceAt = (caret) => sentences.find((s) => s.start <= caret && caret <= s.end) || null;
  const onCaret = (event) => {
    const found = sentenceAt(event.target.selectionStart);
    const index = found ? found.index : -1;
    if (index === active) return;
    setActive(index);
    if (found) onSentence?.(found);
  };

  const onInput = (event) => {
    const value = event.target.value;
    set({ text: value });
    pending.keep(uid, live.current);
    if (['stale', 'locked', 'claimed'].includes(live.current.status)) return;
    set({ status: 'dirty' });
    clearTimeout(timer.current);
    timer.current = setTimeout(save, DEBOUNCE_MS);
  };
  const onScroll = (event) => { if (backdrop.current) backdrop.current.scrollTop = event.target.scrollTop; };

  // A finding clicked in the list: bring its first sentence into view.
  useEffect(() => {
    const mark = backdrop.current?.querySelector('.sa-sent-finding');
    if (mark && area.current) {
      area.current.scrollTop = Math.max(0, mark.offsetTop - 24);
      backdrop.current.scrollTop = area.current.scrollTop;
    }
  }, [[...highlighted].join(',')]);

  const resolve = async (merged, theirs) => {
    setConflict(null);
    set({ text: merged, base: theirs.number, status: 'dirty' });
    live.current.baseText = theirs.text;
    setLinked({ text: theirs.text, sentences: [] });
    pending.keep(uid, live.current);
    await save();
  };
  const takeTheirs = (theirs) => {
    setConflict(null);
    set({ text: theirs.text, base: theirs.number, status: 'saved' });
    live.current.baseText = theirs.text;
    pending.forget(uid);
    setMessage(`Loaded version ${theirs.number}; your text was discarded`);
    onChanged?.();
  };

  const readOnly = !canEdit || ['locked', 'claimed'].includes(status) || Boolean(conflict);
  const label = {
    saved: message || (base != null ? `Version ${base}` : 'Nothing saved yet'), dirty: message || 'Unsaved changes…',
    saving: 'Saving…', stale: 'Someone saved a newer version: merge below', locked: message, claimed: message,
    error: message, offline: message,
  }[status];
  return html`<section data-testid="editor" data-save-state=${status}>
    <h4>Report <span class=${`sa-muted sa-save-${status}`} data-testid="version-label">${label}</span></h4>
    ${fromScratch && !current && html`<p class="sa-muted">Writing without an AI draft: nothing to score with RADPEER.</p>`}
    <div class="sa-editor-wrap">
      <${Backdrop} text=${text} sentences=${sentences} active=${active} highlighted=${highlighted}
        backdropRef=${backdrop} />
      <textarea class="sa-editor" data-testid="report-text" rows="16" value=${text} ref=${area}
        readOnly=${readOnly} onInput=${onInput} onScroll=${onScroll} onBlur=${() => save()}
        onSelect=${onCaret} onClick=${onCaret} onKeyUp=${onCaret} spellcheck="true"
        aria-label="Report text"></textarea>
    </div>
    ${(status === 'error' || status === 'offline') && html`<button type="button" data-testid="retry-save"
        onClick=${() => save()}>Save again now</button>`}
    ${conflict && html`<${Merge} conflict=${conflict} onResolve=${resolve} onTakeTheirs=${takeTheirs} />`}
  </section>`;
}
