// SpineAgent extension for the prebuilt OHIF viewer: one right-side panel, rendered as a React island.
//
// Why an island: OHIF does not expose its React, and components built with a second React copy break
// hooks inside OHIF's tree. So the panel component OHIF renders is hook-free and returns a bare <div>
// whose callback ref mounts our own React root (vendor.js) into it.
import { React, createRoot } from './vendor.js';
import { api } from './api.js';
import { EXTENSION_ID, PANEL_NAME } from './ids.js';
import { Panel } from './panel/Panel.js';
import { Viewer } from './viewer.js';

const STYLESHEET = new URL('./panel/panel.css', import.meta.url).href;

function ensureStylesheet() {
  if (document.querySelector(`link[href="${STYLESHEET}"]`)) return;
  document.head.append(Object.assign(document.createElement('link'), { rel: 'stylesheet', href: STYLESHEET }));
}

function islandComponent(managers) {
  const viewer = new Viewer(managers);
  window.spineagent = viewer; // for the e2e tests and the browser console: currentImage(), boxesOnCurrentImage()
  let mounted = null; // {node, root}: OHIF shows one panel instance at a time
  // One stable callback: OHIF re-renders the panel often; a new ref function each time would remount us.
  // React calls it with the node on mount and with null on unmount (mode exit, panel closed).
  const mount = (node) => {
    if (mounted && mounted.node !== node) {
      mounted.root.unmount();
      mounted = null;
    }
    if (!node || mounted) return;
    ensureStylesheet();
    mounted = { node, root: createRoot(node) };
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
  getPanelModule({ servicesManager, extensionManager, commandsManager }) {
    return [{
      name: PANEL_NAME,
      iconName: 'tab-patient-info',
      iconLabel: 'Report',
      label: 'SpineAgent report',
      component: islandComponent({ servicesManager, extensionManager, commandsManager }),
    }];
  },
};
