// The report panel's keyboard commands, as OHIF's own extensions provide theirs: a commands module (run by OHIF's
// commands manager) and hotkey bindings (pushed by our mode into the 'ohif.hotkeyBindings' customization, bound by
// OHIF's hotkeys manager, listed and re-mappable in its preferences). The commands act on the mounted panel, which
// registers what "next finding" and "save" mean for it (setPanelHandlers); with no panel mounted they do nothing.

const CONTEXT = 'SPINEAGENT';
export const NEXT_FINDING = 'spineagentNextFinding';
export const PREVIOUS_FINDING = 'spineagentPreviousFinding';
export const SAVE_REPORT = 'spineagentSaveReport';

/** The bindings our mode adds. `mod` is Cmd on a Mac and Ctrl elsewhere: the platform's save key. */
export const HOTKEYS = [
  { commandName: NEXT_FINDING, label: 'Next finding with an image (SpineAgent)', keys: ['alt+n'] },
  { commandName: PREVIOUS_FINDING, label: 'Previous finding with an image (SpineAgent)', keys: ['alt+p'] },
  { commandName: SAVE_REPORT, label: 'Save the report now (SpineAgent)', keys: ['mod+s'] },
];

let handlers = null; // {step(direction), save()} of the mounted panel

/** The panel's handlers while it is mounted; returns the function that removes them again. */
export function setPanelHandlers(panel) {
  handlers = panel;
  return () => { if (handlers === panel) handlers = null; };
}

export function getCommandsModule() {
  const actions = {
    [NEXT_FINDING]: () => handlers?.step(1),
    [PREVIOUS_FINDING]: () => handlers?.step(-1),
    [SAVE_REPORT]: () => handlers?.save(),
  };
  const definitions = Object.fromEntries(Object.entries(actions).map(([name, commandFn]) => [name, { commandFn }]));
  return { actions, definitions, defaultContext: CONTEXT };
}

const isMac = () => /Mac|iPhone|iPad/.test(navigator.platform || navigator.userAgent);

/** Whether a keydown event is the combination `keys` (OHIF's notation: 'alt+n', 'mod+s', or a list of parts). */
function pressed(event, keys) {
  const parts = (Array.isArray(keys) ? keys.join('+') : String(keys || '')).toLowerCase().split('+');
  const key = parts.pop();
  if (!key) return false;
  const want = new Set(parts.map((p) => (p === 'mod' ? (isMac() ? 'meta' : 'ctrl') : p)));
  const modifiers = { alt: event.altKey, ctrl: event.ctrlKey, meta: event.metaKey, shift: event.shiftKey };
  if (Object.entries(modifiers).some(([name, down]) => down !== want.has(name))) return false;
  // event.code too: Alt+N types a dead key on some layouts (macOS), so event.key is not 'n'.
  return event.key.toLowerCase() === key || event.code === `Key${key.toUpperCase()}`;
}

/** OHIF's hotkeys stay silent while the focus is in a text field (a reader types letters and digits there); our
 * commands carry modifiers and must work while writing the report. A keydown listener for the panel's root: for a
 * text field's event it runs the one of our commands whose current binding (the reader's own, if re-mapped) the
 * keys make, and keeps the event from the page (no browser "save page" dialog). */
export function forwardOurHotkeys({ hotkeysManager, commandsManager }) {
  const ours = new Set(HOTKEYS.map((h) => h.commandName));
  return (event) => {
    const field = event.target;
    if (!(field?.isContentEditable || ['INPUT', 'SELECT', 'TEXTAREA'].includes(field?.tagName))) return;
    const binding = Object.values(hotkeysManager?.hotkeyDefinitions || {})
      .find((h) => ours.has(h.commandName) && pressed(event, h.keys));
    if (!binding) return;
    event.preventDefault();
    event.stopPropagation();
    commandsManager.runCommand(binding.commandName, binding.commandOptions || {});
  };
}
