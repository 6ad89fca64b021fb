-- Made by clientkeys at f057c2e (before the store became backend objects): migrations m001-m002 only, and rows.
BEGIN TRANSACTION;
CREATE TABLE "_sqlite_migrations" (
   "id" INTEGER PRIMARY KEY,
   "migration_set" TEXT,
   "name" TEXT,
   "applied_at" TEXT
);
INSERT INTO "_sqlite_migrations" VALUES(1,'clientkeys','m001_initial','2026-12-08 01:13:16.008252+00:00');
INSERT INTO "_sqlite_migrations" VALUES(2,'clientkeys','m002_dsn_endpoint_and_audit_log','2026-12-08 01:13:16.008508+00:00');
CREATE TABLE audit_log (
            id INTEGER PRIMARY KEY,
            organization_id INTEGER NOT NULL REFERENCES organizations(id),
            event TEXT NOT NULL,
            target TEXT NOT NULL,
            data TEXT NOT NULL DEFAULT '{}',
            date_added TEXT NOT NULL
        );
CREATE TABLE keys (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            project_id INTEGER NOT NULL REFERENCES projects(id),
            label TEXT NOT NULL,
            public_key TEXT NOT NULL UNIQUE,
            secret_key TEXT NOT NULL UNIQUE,
            status INTEGER NOT NULL DEFAULT 0,
            use_case TEXT NOT NULL DEFAULT 'user',
            rate_limit_count INTEGER,
            rate_limit_window INTEGER,
            data TEXT NOT NULL DEFAULT '{}',
            date_added TEXT NOT NULL
        );
CREATE TABLE organizations (
            id INTEGER PRIMARY KEY,
            slug TEXT NOT NULL UNIQUE,
            name TEXT NOT NULL,
            date_created TEXT NOT NULL
        , dsn_endpoint TEXT);
INSERT INTO "organizations" VALUES(1,'acme','Acme','2026-12-08T01:13:16.009530Z','https://relay.example.com');
CREATE TABLE projects (
            id INTEGER PRIMARY KEY,
            organization_id INTEGER NOT NULL REFERENCES organizations(id),
            slug TEXT NOT NULL,
            name TEXT NOT NULL,
            date_created TEXT NOT NULL,
            UNIQUE (organization_id, slug)
        );
CREATE TABLE tokens (
            id INTEGER PRIMARY KEY,
            token_hash TEXT NOT NULL UNIQUE,
            organization_id INTEGER REFERENCES organizations(id),
            scopes TEXT NOT NULL,
            is_superuser INTEGER NOT NULL DEFAULT 0,
            label TEXT NOT NULL DEFAULT '',
            date_created TEXT NOT NULL
        );
CREATE UNIQUE INDEX "idx__sqlite_migrations_migration_set_name"
    ON "_sqlite_migrations" ("migration_set", "name");
CREATE INDEX keys_by_project ON keys (project_id, id);
CREATE INDEX keys_by_project_status ON keys (project_id, status, id);
DELETE FROM "sqlite_sequence";
COMMIT;
