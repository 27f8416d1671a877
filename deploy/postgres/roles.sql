-- Least privilege for FlowDock's databases: one login role per service, owning its own database only.
-- None is a superuser or may create databases or roles; nobody else (PUBLIC) may connect to a service's database,
-- so a service holding its own credentials cannot read or alter another's data.
--
-- psql variables: prefix (database-name prefix, `flowdock` in compose: roles and databases flowdock_auth,
-- flowdock_storage, flowdock_share, matching FLOWDOCK_DB_URL .../flowdock) and auth_password, storage_password,
-- share_password, dav_password. Run by init-roles.sh on PostgreSQL's first start; tests/deploy/test_compose.py runs it for real.
\set ON_ERROR_STOP on

\set role :prefix _auth
CREATE ROLE :"role" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD :'auth_password';
CREATE DATABASE :"role" OWNER :"role";
REVOKE ALL ON DATABASE :"role" FROM PUBLIC;

\set role :prefix _storage
CREATE ROLE :"role" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD :'storage_password';
CREATE DATABASE :"role" OWNER :"role";
REVOKE ALL ON DATABASE :"role" FROM PUBLIC;

\set role :prefix _share
CREATE ROLE :"role" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD :'share_password';
CREATE DATABASE :"role" OWNER :"role";
REVOKE ALL ON DATABASE :"role" FROM PUBLIC;

\set role :prefix _dav
CREATE ROLE :"role" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD :'dav_password';
CREATE DATABASE :"role" OWNER :"role";
REVOKE ALL ON DATABASE :"role" FROM PUBLIC;
