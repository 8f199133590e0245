-- Runs once, as the PostgreSQL superuser, when the postgresql service starts on an empty volume
-- (mounted into /docker-entrypoint-initdb.d by docker-compose.yml).
--
-- Two roles, each owning only its own databases:
--   enroll   -> enroll                           (the app's store; ENROLL_DATABASE_URL)
--   temporal -> temporal, temporal_visibility   (Temporal's persistence and visibility;
--                                                 deploy/temporal-schema.sh creates the tables)
-- Passwords come from the container environment (APP_DB_PASSWORD, TEMPORAL_DB_PASSWORD) through
-- psql's \getenv, so none is written here.

\getenv app_db_password APP_DB_PASSWORD
\getenv temporal_db_password TEMPORAL_DB_PASSWORD

CREATE ROLE enroll LOGIN PASSWORD :'app_db_password';
CREATE DATABASE enroll OWNER enroll;
REVOKE ALL ON DATABASE enroll FROM PUBLIC;

CREATE ROLE temporal LOGIN PASSWORD :'temporal_db_password';
CREATE DATABASE temporal OWNER temporal;
CREATE DATABASE temporal_visibility OWNER temporal;
REVOKE ALL ON DATABASE temporal FROM PUBLIC;
REVOKE ALL ON DATABASE temporal_visibility FROM PUBLIC;

-- Temporal's visibility schema indexes with btree_gin; installing it here means the temporal
-- role never needs to create extensions.
\connect temporal_visibility
CREATE EXTENSION IF NOT EXISTS btree_gin;

-- The store's organization name search reads a pg_trgm index (store migration 0004). pg_trgm is a trusted
-- extension, so the database owner could create it too; installing it here keeps that off the app's role.
\connect enroll
CREATE EXTENSION IF NOT EXISTS pg_trgm;
