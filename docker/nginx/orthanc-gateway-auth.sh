#!/bin/sh
# Runs before nginx starts (the image's /docker-entrypoint.d/): writes the Authorization header of the DICOMweb
# gateway's Orthanc account, which Orthanc confines to GET under /dicom-web/, for nginx's fast image path
# (nginx.conf, location /dicom-web/). The browser never sees it; the file is readable by root only.
set -eu
: "${ORTHANC_GATEWAY_USERNAME:?set ORTHANC_GATEWAY_USERNAME}"
: "${ORTHANC_GATEWAY_PASSWORD:?set ORTHANC_GATEWAY_PASSWORD}"
mkdir -p /etc/nginx/spineagent
umask 077
credential=$(printf '%s:%s' "$ORTHANC_GATEWAY_USERNAME" "$ORTHANC_GATEWAY_PASSWORD" | base64 | tr -d '\n')
printf 'proxy_set_header Authorization "Basic %s";\n' "$credential" > /etc/nginx/spineagent/orthanc-gateway-auth.conf
