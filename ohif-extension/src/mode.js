// SpineAgent mode: OHIF's basic viewer mode (loaded through the host's own loader) with our report
// panel first on the right and the right side open, for MR studies. Route: /viewer/spineagent?StudyInstanceUIDs=<uid>
// On enter it adds our hotkeys (commands.js) to OHIF's bindings; on exit it ends the reading (extension.js)
// before the basic mode tears down viewports and tool groups.
import { HOTKEYS } from './commands.js';
import { endReading } from './extension.js';
import { EXTENSION_ID, PANEL_ID } from './ids.js';

export default {
  id: EXTENSION_ID,
  async modeFactory({ loadModules }) {
    const [basic] = await loadModules(['@ohif/mode-basic']);
    const base = basic.modeInstance;
    const route = base.routes[0];
    const props = route.layoutInstance.props;
    return {
      ...base,
      id: EXTENSION_ID,
      routeName: 'spineagent',
      displayName: 'SpineAgent report',
      hide: false,
      modeModalities: ['MR'], // spine MRI: the mode is offered for studies with an MR series
      // Our extension is registered globally from app-config.js; listing it here by bare name would make
      // the route try to import() that name.
      extensions: base.extensions,
      // `this` is this mode instance: the basic mode's hooks keep their subscriptions on it.
      onModeEnter(args) {
        base.onModeEnter.call(this, args);
        // Read by the mode route right after onModeEnter (hotkeysManager.setDefaultHotKeys); the mode scope is
        // reset on every enter, so the bindings are never pushed twice.
        args.servicesManager.services.customizationService.setCustomizations({
          'ohif.hotkeyBindings': { $push: HOTKEYS.map((h) => ({ ...h })) },
        });
      },
      onModeExit(args) {
        endReading();
        base.onModeExit.call(this, args);
      },
      routes: [{
        ...route,
        path: 'spineagent',
        layoutInstance: {
          ...route.layoutInstance,
          props: { ...props, rightPanels: [PANEL_ID, ...props.rightPanels], rightPanelClosed: false },
        },
      }],
    };
  },
};
