// The panel's handle on OHIF and cornerstone: hang the study as the reading starts (T1 | T2 sagittal, mid-sagittal
// slice or the top finding's key slice), find an image by SOP Instance UID, show it in the viewport that holds
// its series, draw the model's boxes as locked RectangleROI annotations labelled with condition, level and call.

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(check, timeoutMs = 20000, intervalMs = 250) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value) return value;
    if (Date.now() > end) return null;
    await sleep(intervalMs);
  }
}

const cross = (a, b) => [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];

export class Viewer {
  constructor({ servicesManager, extensionManager }) {
    this.services = servicesManager.services;
    this.extensionManager = extensionManager;
    this.drawn = new Map(); // box key -> annotationUID, so polling never draws a box twice
  }

  get libs() {
    const entry = this.extensionManager.getModuleEntry('@ohif/extension-cornerstone.utilityModule.common');
    return entry.exports.getCornerstoneLibraries(); // {cornerstone, cornerstoneTools}
  }

  studyInstanceUID() {
    const query = new URLSearchParams(window.location.search);
    const value = query.get('StudyInstanceUIDs') || query.get('studyInstanceUIDs') || '';
    return value.split(',')[0] || null;
  }

  /** {displaySet, imageId} of a loaded instance, or null while its series' metadata is not in yet. */
  findImage(seriesUID, sopUID) {
    for (const ds of this.services.displaySetService.getActiveDisplaySets()) {
      if (ds.SeriesInstanceUID !== seriesUID) continue;
      const instance = (ds.instances || []).find((i) => i.SOPInstanceUID === sopUID);
      if (instance) return { displaySet: ds, imageId: instance.imageId || ds.imageIds?.[ds.instances.indexOf(instance)] };
    }
    return null;
  }

  activeViewport() {
    const id = this.services.viewportGridService.getActiveViewportId();
    const viewport = id && this.services.cornerstoneViewportService.getCornerstoneViewport(id);
    return viewport ? { id, viewport } : null;
  }

  /** The image the active viewport shows: {seriesInstanceUID, sopInstanceUID, imageId}. */
  currentImage() {
    const active = this.activeViewport();
    const imageId = active?.viewport.getCurrentImageId?.();
    if (!imageId) return null;
    const instance = this.libs.cornerstone.metaData.get('instance', imageId) || {};
    return { imageId, seriesInstanceUID: instance.SeriesInstanceUID, sopInstanceUID: instance.SOPInstanceUID };
  }

  /** The viewport id that shows `displaySetInstanceUID`, if any. */
  viewportShowing(displaySetInstanceUID) {
    for (const [id, vp] of this.services.viewportGridService.getState().viewports) {
      if ((vp.displaySetInstanceUIDs || []).includes(displaySetInstanceUID)) return id;
    }
    return null;
  }

  /** Show an image: in the viewport that already shows its series (made active), else in the active viewport
   * switched to that series. */
  async jumpTo({ series_instance_uid: seriesUID, sop_instance_uid: sopUID }) {
    const found = await waitFor(() => this.findImage(seriesUID, sopUID));
    if (!found) return false;
    const { viewportGridService } = this.services;
    const holder = this.viewportShowing(found.displaySet.displaySetInstanceUID);
    if (holder && holder !== viewportGridService.getActiveViewportId()) viewportGridService.setActiveViewportId(holder);
    const active = await waitFor(() => this.activeViewport());
    if (!active) return false;
    const shows = () => this.activeViewport()?.viewport.getImageIds?.().indexOf(found.imageId) ?? -1;
    if (!(await waitFor(() => shows() >= 0, holder ? 5000 : 1)) && shows() < 0) {
      viewportGridService.setDisplaySetsForViewport({
        viewportId: active.id, displaySetInstanceUIDs: [found.displaySet.displaySetInstanceUID],
      });
      if (!(await waitFor(() => shows() >= 0, 15000))) return false;
    }
    const { viewport } = this.activeViewport();
    await viewport.setImageIdIndex(shows());
    viewport.render();
    return true;
  }

  /** Our boxes show their label (condition, level, call, score) on the image instead of the rectangle's
   * statistics, which stay in OHIF's measurement panel; a reader's own rectangles are untouched. */
  labelOurBoxes() {
    const { ToolGroupManager } = this.libs.cornerstoneTools;
    for (const group of ToolGroupManager.getAllToolGroups?.() || []) {
      const tool = group.hasTool?.('RectangleROI') && group.getToolInstance('RectangleROI');
      if (!tool?.configuration || tool.configuration.spineagentLabels) continue;
      const statistics = tool.configuration.getTextLines;
      tool.configuration.getTextLines = (data, targetId) => (data?.label?.startsWith('AI: ')
        ? [data.label] : statistics?.(data, targetId));
      tool.configuration.spineagentLabels = true;
    }
  }

  /** Add each box not drawn yet; returns how many boxes are on the images now. */
  drawBoxes(boxes) {
    const { cornerstone, cornerstoneTools } = this.libs;
    const { annotation } = cornerstoneTools;
    this.labelOurBoxes();
    for (const box of boxes) {
      const key = `${box.sop_instance_uid}|${box.condition}|${box.box.join(',')}`;
      if (this.drawn.has(key) && annotation.state.getAnnotation(this.drawn.get(key))) continue;
      const found = this.findImage(box.series_instance_uid, box.sop_instance_uid);
      const plane = found && cornerstone.metaData.get('imagePlaneModule', found.imageId);
      if (!plane?.rowCosines) continue; // metadata not loaded yet; the next poll retries
      const [x0, y0, x1, y1] = box.box;
      // Corner order RectangleROI expects: top-left, top-right, bottom-left, bottom-right.
      const points = [[x0, y0], [x1, y0], [x0, y1], [x1, y1]]
        .map((p) => cornerstone.utilities.imageToWorldCoords(found.imageId, p));
      const uid = cornerstone.utilities.uuidv4();
      annotation.state.addAnnotation({
        annotationUID: uid,
        highlighted: false,
        isLocked: true, // AI output: reviewers look at it, they do not drag it
        isVisible: true,
        invalidated: true,
        metadata: {
          toolName: 'RectangleROI',
          FrameOfReferenceUID: plane.frameOfReferenceUID,
          referencedImageId: found.imageId,
          viewPlaneNormal: cross(plane.rowCosines, plane.columnCosines),
          viewUp: plane.columnCosines.map((v) => -v),
        },
        data: {
          label: box.label, // the server names each box (condition, level, call): backend/reports/serializers.py
          handles: {
            points,
            activeHandleIndex: null,
            textBox: { hasMoved: false, worldPosition: [0, 0, 0], worldBoundingBox: { topLeft: [0, 0, 0], topRight: [0, 0, 0], bottomLeft: [0, 0, 0], bottomRight: [0, 0, 0] } },
          },
          cachedStats: {},
        },
      }, this.activeViewport()?.viewport.element || plane.frameOfReferenceUID);
      annotation.locking.setAnnotationLocked(uid, true);
      this.drawn.set(key, uid);
    }
    const ids = this.services.cornerstoneViewportService.getViewportIds?.() || [];
    if (ids.length) cornerstoneTools.utilities.triggerAnnotationRenderForViewportIds(ids);
    return [...this.drawn.values()].filter((uid) => annotation.state.getAnnotation(uid)).length;
  }

  /** How many of our boxes are on the image the active viewport shows. */
  boxesOnCurrentImage() {
    const imageId = this.activeViewport()?.viewport.getCurrentImageId?.();
    const { annotation } = this.libs.cornerstoneTools;
    return [...this.drawn.values()].map((uid) => annotation.state.getAnnotation(uid))
      .filter((a) => a && a.metadata.referencedImageId === imageId).length;
  }

  /** Hang the study where the reading starts. `layout`: sequence types left to right (site setting, e.g.
   * ["T1", "T2"]); `series`: the index's series with plane and sequence type; `target`: the image to show first
   * (a key slice or box), else every viewport opens on its series' middle (mid-sagittal) slice. */
  async openReading(options) {
    try {
      return await this.hangReading(options);
    } catch (error) { // the viewer may be closed or re-laid out meanwhile: the reader just sees OHIF's layout
      console.warn('SpineAgent: could not open the reading layout:', error?.message || error);
      return false;
    }
  }

  async hangReading({ layout = ['T1', 'T2'], series = [], target = null }) {
    const { displaySetService, hangingProtocolService, viewportGridService } = this.services;
    const sagittal = (type) => series.find((s) => s.plane === 'sagittal' && s.sequence_type === type && s.modality === 'MR');
    const wanted = layout.map(sagittal).filter(Boolean).map((s) => s.series_instance_uid);
    if (target && !wanted.includes(target.series_instance_uid)) {
      wanted.splice(Math.max(0, wanted.length - 1), 1, target.series_instance_uid); // the finding's series in view
    }
    if (!wanted.length) return false;
    const sets = await waitFor(() => {
      const all = displaySetService.getActiveDisplaySets();
      const found = wanted.map((uid) => all.find((d) => d.SeriesInstanceUID === uid && (d.images || d.instances)?.length));
      return found.every(Boolean) ? found : null;
    }, 60000);
    if (!sets) return false;
    // Let OHIF's first viewport finish its first image: replacing it mid-load leaves cornerstone timers
    // pointing at a destroyed viewport.
    const { cornerstone } = this.libs;
    await waitFor(() => {
      const imageId = this.activeViewport()?.viewport.getCurrentImageId?.();
      return imageId && cornerstone.cache.isLoaded?.(imageId);
    }, 15000);
    await sleep(300);
    const study = sets[0].StudyInstanceUID;
    const ids = sets.map((_, i) => `spineagent-${i}`);
    const protocol = {
      id: 'spineagent-reading', name: 'SpineAgent reading', protocolMatchingRules: [],
      displaySetSelectors: Object.fromEntries(ids.map((id) => [id, { seriesMatchingRules: [] }])),
      stages: [{
        name: layout.join(' | '), viewportStructure: { layoutType: 'grid', properties: { rows: 1, columns: sets.length } },
        viewports: ids.map((id) => ({ viewportOptions: { viewportId: id, toolGroupId: 'default',
          initialImageOptions: { preset: 'middle' } }, displaySets: [{ id }] })),
      }],
    };
    hangingProtocolService.addProtocol(protocol.id, protocol);
    hangingProtocolService.setProtocol(protocol.id, { displaySetSelectorMap: Object.fromEntries(
      ids.map((id, i) => [`${study}:${id}:0`, [sets[i].displaySetInstanceUID]])) });
    // OHIF may restore a series' last position: set the middle slice (or the target) explicitly.
    for (const [i, id] of ids.entries()) {
      const viewport = await waitFor(() => this.services.cornerstoneViewportService.getCornerstoneViewport(id)
        ?.getImageIds?.().length && this.services.cornerstoneViewportService.getCornerstoneViewport(id), 20000);
      if (!viewport) continue;
      const count = viewport.getImageIds().length;
      await viewport.setImageIdIndex(count % 2 ? (count - 1) / 2 : count / 2);
      this.windowIfUnset(viewport);
      if (target && sets[i].SeriesInstanceUID === target.series_instance_uid) viewportGridService.setActiveViewportId(id);
    }
    if (target) await this.jumpTo(target);
    return true;
  }

  /** A sensible window where the images carry none (DICOM Window Center/Width): the 1st-99th percentile of the
   * displayed slice. Images that carry one keep it. */
  windowIfUnset(viewport) {
    const imageId = viewport.getCurrentImageId?.();
    const voi = imageId && this.libs.cornerstone.metaData.get('voiLutModule', imageId);
    if (!imageId || (voi?.windowCenter != null && voi?.windowCenter !== '')) return;
    const image = this.libs.cornerstone.cache.getImage?.(imageId);
    const pixels = image?.getPixelData?.();
    if (!pixels?.length) return;
    const step = Math.max(1, Math.floor(pixels.length / 20000));
    const sample = [];
    for (let i = 0; i < pixels.length; i += step) sample.push(pixels[i] * (image.slope ?? 1) + (image.intercept ?? 0));
    sample.sort((a, b) => a - b);
    const lower = sample[Math.floor(sample.length * 0.01)];
    const upper = sample[Math.floor(sample.length * 0.99)];
    if (upper > lower) {
      viewport.setProperties({ voiRange: { lower, upper } });
      viewport.render();
    }
  }

  /** Our boxes out of cornerstone's annotation state and OHIF's measurements (the mode is left): the next
   * reading starts with none of this one's. */
  reset() {
    const { annotation } = this.libs.cornerstoneTools;
    const { measurementService } = this.services;
    for (const uid of this.drawn.values()) {
      if (annotation.state.getAnnotation(uid)) annotation.state.removeAnnotation(uid);
      if (measurementService.getMeasurement(uid)) measurementService.remove(uid);
    }
    this.drawn.clear();
  }

  /** OHIF's measurement for a drawn box (area, statistics), if OHIF has mapped it already. */
  measurementFor(box) {
    const uid = this.drawn.get(`${box.sop_instance_uid}|${box.condition}|${box.box.join(',')}`);
    return uid ? this.services.measurementService.getMeasurement(uid) : null;
  }
}
