// Names OHIF uses to find our modules: <extension id>.panelModule.<panel name>.
export const EXTENSION_ID = 'spineagent';
export const PANEL_NAME = 'report';
export const PANEL_ID = `${EXTENSION_ID}.panelModule.${PANEL_NAME}`;
