-- The database's two roles, made once, when the db service's data volume is first
-- created: the postgres image runs /docker-entrypoint-initdb.d/*.sql with psql, as
-- POSTGRES_USER (a superuser, kept for administration only) in POSTGRES_DB.
--
--   app_owner  owns the database and its schema: `manage.py migrate` (the migrate
--              service) logs in as it. No SUPERUSER, CREATEDB or CREATEROLE.
--   app        the site and PgBouncer's upstream: it may connect, read and write
--              the rows of app_owner's tables and use their sequences; it may not
--              create, alter or drop anything.
--
-- The passwords come from the container's environment (psql's \getenv), never from
-- a command line: APP_OWNER_PASSWORD and APP_PASSWORD. Like POSTGRES_PASSWORD, they
-- are read only here; to change one later, ALTER ROLE as POSTGRES_USER.

\set ON_ERROR_STOP on
\set QUIET on
-- A failed statement is written to the server's log with its text (PostgreSQL's
-- log_min_error_statement), passwords included: not this session's.
SET log_min_error_statement = panic;
SET log_statement = 'none';

\getenv owner_password APP_OWNER_PASSWORD
\getenv site_password APP_PASSWORD
\if :{?owner_password}
\else
  \set owner_password ''
\endif
\if :{?site_password}
\else
  \set site_password ''
\endif

SELECT :'owner_password' = '' AS owner_missing,
       :'site_password' = '' AS site_missing,
       :'owner_password' = :'site_password' AS same_password,
       current_database() AS database_name
\gset

\if :owner_missing
DO $$ BEGIN RAISE EXCEPTION 'APP_OWNER_PASSWORD is unset or empty, so the owner '
  'role app_owner would have no password. Fix: set APP_OWNER_PASSWORD in .env (the '
  'password in OWNER_DATABASE_URL, plain), then recreate the db volume '
  '(docker compose down -v).'; END $$;
\endif
\if :site_missing
DO $$ BEGIN RAISE EXCEPTION 'APP_PASSWORD is unset or empty, so the site''s role app '
  'would have no password. Fix: set APP_PASSWORD in .env (the password in '
  'DATABASE_URL, plain), then recreate the db volume (docker compose down -v).';
  END $$;
\endif
\if :same_password
DO $$ BEGIN RAISE EXCEPTION 'APP_OWNER_PASSWORD and APP_PASSWORD are the same, so '
  'the site could log in as the owner of its tables. Fix: give each its own value '
  'in .env, then recreate the db volume (docker compose down -v).'; END $$;
\endif

CREATE ROLE app_owner LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION
  NOBYPASSRLS PASSWORD :'owner_password';
CREATE ROLE app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
  PASSWORD :'site_password';

-- The owner owns the database and the schema the migrations create tables in.
-- Nobody else may create there (PUBLIC had CREATE on public before PostgreSQL 15),
-- and only the site's role may connect besides the owner and superusers.
ALTER DATABASE :"database_name" OWNER TO app_owner;
REVOKE ALL ON DATABASE :"database_name" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"database_name" TO app;
ALTER SCHEMA public OWNER TO app_owner;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO app;

-- What the site may do to the tables and sequences the owner's migrations create
-- from now on: rows only. TRUNCATE, REFERENCES and TRIGGER stay the owner's.
ALTER DEFAULT PRIVILEGES FOR ROLE app_owner IN SCHEMA public
  GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO app;
ALTER DEFAULT PRIVILEGES FOR ROLE app_owner IN SCHEMA public
  GRANT USAGE, SELECT ON SEQUENCES TO app;
