// The panel's own React copy (an island; see extension.js), bundled once by scripts/build_viewer.sh
// because react/react-dom ship CommonJS only. htm gives JSX-like templates without a build step.
import React from 'react';
import { createRoot } from 'react-dom/client';
import htm from 'htm';

export { React, createRoot };
export const html = htm.bind(React.createElement);
export const { useState, useEffect, useRef, useCallback, useMemo } = React;
