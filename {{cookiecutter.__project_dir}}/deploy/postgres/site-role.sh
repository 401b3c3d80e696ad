#!/bin/sh
# Run by the postgres image at first start, on an empty volume only: the site's role, which
# owns the site's database and nothing more (no superuser, no CREATEDB, no CREATEROLE).
# https://hub.docker.com/_/postgres ("Initialization scripts")
set -eu
psql --no-psqlrc --set ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    --set site_user="$POSTGRES_SITE_USER" --set site_password="$POSTGRES_SITE_PASSWORD" <<'SQL'
CREATE ROLE :"site_user" LOGIN PASSWORD :'site_password';
CREATE DATABASE :"site_user" OWNER :"site_user";
REVOKE CONNECT ON DATABASE postgres FROM PUBLIC;
SQL
