// SpineAgent extension for the prebuilt OHIF viewer: one right-side panel, rendered as a React island.
//
// Why an island: OHIF does not expose its React, and components built with a second React copy break
// hooks inside OHIF's tree. So the panel component OHIF renders is hook-free and returns a bare <div>
// whose callback ref mounts our own React root (vendor.js) into it.
import { React, createRoot } from './vendor.js';
import { api } from './api.js';
import { forwardOurHotkeys, getCommandsModule } from './commands.js';
import { EXTENSION_ID, PANEL_NAME } from './ids.js';
import { Panel } from './panel/Panel.js';
import { Viewer } from './viewer.js';

const STYLESHEET = new URL('./panel/panel.css', import.meta.url).href;

function ensureStylesheet() {
  if (document.querySelector(`link[href="${STYLESHEET}"]`)) return;
  document.head.append(Object.assign(document.createElement('link'), { rel: 'stylesheet', href: STYLESHEET }));
}

let mounted = null; // {node, root, onKey}: OHIF shows one panel instance at a time
let viewer = null;

function unmountPanel() {
  if (!mounted) return;
  mounted.node.removeEventListener('keydown', mounted.onKey, true);
  mounted.root.unmount(); // runs the panel's cleanups: polling and box drawing stop, pending text is saved
  mounted = null;
}

/** Leaving the SpineAgent mode (its onModeExit, before OHIF tears down viewports and tool groups): the panel
 * is unmounted, our boxes leave cornerstone's annotations and OHIF's measurements, the console handle goes. */
export function endReading() {
  unmountPanel();
  viewer?.reset();
  if (window.spineagent === viewer) delete window.spineagent;
}

function islandComponent(managers) {
  viewer = new Viewer(managers);
  const onKey = forwardOurHotkeys(managers);
  // One stable callback: OHIF re-renders the panel often; a new ref function each time would remount us.
  // React calls it with the node on mount and with null on unmount (mode exit, panel closed).
  const mount = (node) => {
    if (mounted && mounted.node !== node) unmountPanel();
    if (!node || mounted) return;
    ensureStylesheet();
    window.spineagent = viewer; // for the e2e tests and the browser console: currentImage(), boxesOnCurrentImage()
    mounted = { node, root: createRoot(node), onKey };
    node.addEventListener('keydown', onKey, true);
    mounted.root.render(React.createElement(Panel, { viewer }));
  };
  // Hook-free: plain element objects are accepted by the host's React 18 whoever created them.
  return function SpineAgentPanel() {
    return React.createElement('div', { ref: mount, className: 'spineagent-island', 'data-testid': 'spineagent-panel' });
  };
}

// OHIF's "investigational use only" notice: when this user confirms it, record that on their account
// (POST /api/me/notices/...), so our app-config.js stops showing it to them in any browser (site setting
// SPINEAGENT_VIEWER_NOTICE=once-per-user).
function rememberNoticeAcknowledgement() {
  const notice = window.config?.spineagent?.notice;
  if (!notice || notice.policy !== 'once-per-user' || notice.acknowledged) return;
  document.addEventListener('click', (event) => {
    if (event.target.closest?.('[data-cy="confirm-and-hide-button"]')) api(notice.url, { method: 'POST' });
  }, true);
}

export default {
  id: EXTENSION_ID,
  preRegistration() {
    rememberNoticeAcknowledgement();
  },
  getCommandsModule,
  getPanelModule({ servicesManager, extensionManager, commandsManager, hotkeysManager }) {
    return [{
      name: PANEL_NAME,
      iconName: 'tab-patient-info',
      iconLabel: 'Report',
      label: 'SpineAgent report',
      component: islandComponent({ servicesManager, extensionManager, commandsManager, hotkeysManager }),
    }];
  },
};
