#!/usr/bin/env bash
# Fetch the prebuilt OHIF viewer (npm @ohif/app, pinned) and our extension's npm deps; prepare what
# backend/viewer serves. Needs only the npm registry. Idempotent: a second run is a few stat calls.
#
#   var/ohif/ohif-app-<version>.tgz   the npm tarball, integrity-checked
#   var/ohif/viewer/                  its dist/, mounted at /viewer/ (public path patched, see below)
#   var/ohif/ext/vendor.js            React 18 + react-dom + htm as one ES module for our panel island
set -euo pipefail
cd "$(dirname "$0")/.."

OHIF_VERSION=3.13.2
# sha512 of the registry tarball (npm view @ohif/app@3.13.2 dist.integrity).
OHIF_INTEGRITY="sha512-WZdxmpmG7rqFgW9ZJLcbgr3XCtLi1KDNPoMaeY5PPe6j4G4fjEjjkycZM6C6Zk2F87BKxFfpq+jd5xXZB9E8EA=="
MOUNT=/viewer/
OUT=var/ohif
mkdir -p "$OUT"

# 1. Our extension's npm packages (react, react-dom, htm, esbuild, playwright-core), from the lockfile.
ext=ohif-extension
if [ ! -f "$ext/node_modules/.package-lock.json" ] || [ "$ext/package-lock.json" -nt "$ext/node_modules/.package-lock.json" ]; then
  echo "build_viewer: npm ci in $ext"
  (cd "$ext" && npm ci --no-audit --no-fund --loglevel=error)
fi

# 2. The React island's vendor module: one esbuild call, well under a second.
if [ ! -f "$OUT/ext/vendor.js" ] || [ "$ext/src/vendor-entry.js" -nt "$OUT/ext/vendor.js" ] \
   || [ "$ext/package-lock.json" -nt "$OUT/ext/vendor.js" ]; then
  mkdir -p "$OUT/ext"
  "$ext/node_modules/.bin/esbuild" "$ext/src/vendor-entry.js" --bundle --format=esm --minify \
    --define:process.env.NODE_ENV='"production"' --outfile="$OUT/ext/vendor.js" --log-level=warning
fi

# 3. The viewer itself.
# The stamp names the layout of our patches too: a new patch re-prepares an existing install.
stamp="$OUT/viewer/.spineagent-ohif-$OHIF_VERSION-csp1"
if [ -f "$stamp" ]; then
  exit 0
fi
tgz="$OUT/ohif-app-$OHIF_VERSION.tgz"
if [ ! -f "$tgz" ]; then
  echo "build_viewer: npm pack @ohif/app@$OHIF_VERSION (~50 MB)"
  (cd "$OUT" && npm pack "@ohif/app@$OHIF_VERSION" --silent >/dev/null)
fi
actual=$(node -e 'const c = require("crypto"), fs = require("fs");
  process.stdout.write("sha512-" + c.createHash("sha512").update(fs.readFileSync(process.argv[1])).digest("base64"))' "$tgz")
if [ "$actual" != "$OHIF_INTEGRITY" ]; then
  echo "build_viewer: $tgz does not match the pinned integrity; deleting it" >&2
  rm -f "$tgz"
  exit 1
fi
rm -rf "$OUT/package" "$OUT/viewer"
tar -xzf "$tgz" -C "$OUT"
version=$(node -p "require('./$OUT/package/package.json').version")
[ "$version" = "$OHIF_VERSION" ] || { echo "build_viewer: unpacked version $version != $OHIF_VERSION" >&2; exit 1; }
mv "$OUT/package/dist" "$OUT/viewer"
rm -rf "$OUT/package"

# The build was made for the site root: its webpack public path is the literal "/" (lazy chunks, web
# workers, wasm) and index.html links "/...". Point both at our mount; the patch is checked by counting.
patched=$(grep -l '^__webpack_require__.p = "/";$' "$OUT"/viewer/*.js | wc -l)
[ "$patched" -ge 2 ] || { echo "build_viewer: webpack public path not found; OHIF build changed?" >&2; exit 1; }
sed -i "s#^__webpack_require__.p = \"/\";\$#__webpack_require__.p = \"$MOUNT\";#" "$OUT"/viewer/*.js
sed -i -e "s#window.PUBLIC_URL=\"/\"#window.PUBLIC_URL=\"$MOUNT\"#g" \
       -e "s#\(href\|src\)=\"/\([^/]\)#\1=\"$MOUNT\2#g" "$OUT/viewer/index.html"
sed -i "s#url(/\([0-9a-f]\{16\}\.woff2\))#url($MOUNT\1)#g" "$OUT"/viewer/*.css  # the UI font
grep -q "src=\"${MOUNT}app-config.js\"" "$OUT/viewer/index.html" || { echo "build_viewer: index.html patch failed" >&2; exit 1; }
# Our Content-Security-Policy allows no inline script: index.html's two inline scripts become files, in order.
node -e 'const fs = require("fs"), dir = process.argv[1], mount = process.argv[2];
  let n = 0, html = fs.readFileSync(dir + "/index.html", "utf8");
  html = html.replace(/<script>([\s\S]*?)<\/script>/g, (_, code) => {
    fs.writeFileSync(`${dir}/inline-${++n}.js`, code);
    return `<script src="${mount}inline-${n}.js"></script>`;
  });
  fs.writeFileSync(dir + "/index.html", html);
  if (n < 1) { console.error("build_viewer: no inline script found; OHIF build changed?"); process.exit(1); }' \
  "$OUT/viewer" "$MOUNT"
grep -q "<script>" "$OUT/viewer/index.html" && { echo "build_viewer: an inline script is left in index.html" >&2; exit 1; }
# The shipped config points at a public demo server; backend/viewer serves its own app-config.js.
rm -f "$OUT/viewer/app-config.js"
touch "$stamp"
echo "build_viewer: OHIF $OHIF_VERSION ready in $OUT/viewer ($patched bundles re-based to $MOUNT)"
