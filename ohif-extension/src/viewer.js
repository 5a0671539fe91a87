// The panel's handle on OHIF and cornerstone: find an image by SOP Instance UID, jump the active
// viewport to it, draw the model's boxes as locked RectangleROI annotations.

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

// How a box's label names its condition's call; results without calls fall back to `present`.
const CALL_SUFFIX = { present: '', possible: ', possible', absent: ', below threshold', not_assessed: ', not validated' };
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

  /** Show the key slice in the active viewport, switching it to the slice's series first if needed. */
  async jumpTo({ series_instance_uid: seriesUID, sop_instance_uid: sopUID }) {
    const found = await waitFor(() => this.findImage(seriesUID, sopUID));
    const active = await waitFor(() => this.activeViewport());
    if (!found || !active) return false;
    const { viewportGridService } = this.services;
    const shows = () => this.activeViewport()?.viewport.getImageIds?.().indexOf(found.imageId) ?? -1;
    if (shows() < 0) {
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

  /** Add each box not drawn yet; returns how many boxes are on the images now. */
  drawBoxes(boxes) {
    const { cornerstone, cornerstoneTools } = this.libs;
    const { annotation } = cornerstoneTools;
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
      const label = [box.condition, box.level].filter(Boolean).join(' ');
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
          label: `AI: ${label} (${Math.round(box.score * 100)}%)${CALL_SUFFIX[box.status] ?? (box.present === false ? ', below threshold' : '')}`,
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

  /** OHIF's measurement for a drawn box (area, statistics), if OHIF has mapped it already. */
  measurementFor(box) {
    const uid = this.drawn.get(`${box.sop_instance_uid}|${box.condition}|${box.box.join(',')}`);
    return uid ? this.services.measurementService.getMeasurement(uid) : null;
  }
}
