#!/bin/bash
# Orthanc keeps its index in its own database and role.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<SQL
CREATE ROLE orthanc LOGIN PASSWORD '${ORTHANC_DB_PASSWORD}';
CREATE DATABASE orthanc OWNER orthanc;
SQL
