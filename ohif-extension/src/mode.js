// SpineAgent mode: OHIF's basic viewer mode (loaded through the host's own loader) with our report
// panel first on the right and the right side open. Route: /viewer/spineagent?StudyInstanceUIDs=<uid>
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
      // Our extension is registered globally from app-config.js; listing it here by bare name would make
      // the route try to import() that name.
      extensions: base.extensions,
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
