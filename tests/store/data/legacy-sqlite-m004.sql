-- Made by clientkeys at f057c2e (before the store became backend objects): every migration, and rows.
BEGIN TRANSACTION;
CREATE TABLE "_sqlite_migrations" (
   "id" INTEGER PRIMARY KEY,
   "migration_set" TEXT,
   "name" TEXT,
   "applied_at" TEXT
);
INSERT INTO "_sqlite_migrations" VALUES(1,'clientkeys','m001_initial','2026-12-08 01:13:15.992012+00:00');
INSERT INTO "_sqlite_migrations" VALUES(2,'clientkeys','m002_dsn_endpoint_and_audit_log','2026-12-08 01:13:15.992379+00:00');
INSERT INTO "_sqlite_migrations" VALUES(3,'clientkeys','m003_request_journal','2026-12-08 01:13:15.992527+00:00');
INSERT INTO "_sqlite_migrations" VALUES(4,'clientkeys','m004_health_and_start_state','2026-12-08 01:13:15.992726+00:00');
CREATE TABLE audit_log (
            id INTEGER PRIMARY KEY,
            organization_id INTEGER NOT NULL REFERENCES organizations(id),
            event TEXT NOT NULL,
            target TEXT NOT NULL,
            data TEXT NOT NULL DEFAULT '{}',
            date_added TEXT NOT NULL
        );
INSERT INTO "audit_log" VALUES(1,1,'PROJECTKEY_ADD','5b5fb42b19bd55d0b1965d2fda978bba','{"label": "CI", "public_key": "5b5fb42b19bd55d0b1965d2fda978bba", "status": 0, "rate_limit_count": null, "rate_limit_window": null}','2026-12-08T01:13:15.995894Z');
CREATE TABLE health (id INTEGER PRIMARY KEY CHECK (id = 1), checked REAL);
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
INSERT INTO "keys" VALUES(1,1,'Default','2a494bc1bb8adb8dd4f34df571a9a498','2c85b5a437852a67f278ffeaa5925a5c',0,'user',NULL,NULL,'{"dynamicSdkLoaderOptions": {"hasPerformance": true, "hasReplay": true}}','2026-12-08T01:13:15.995027Z');
INSERT INTO "keys" VALUES(2,1,'CI','5b5fb42b19bd55d0b1965d2fda978bba','0204794cd3b306235198f8c14e52debf',0,'user',NULL,NULL,'{"dynamicSdkLoaderOptions": {"hasPerformance": true, "hasReplay": true}}','2026-12-08T01:13:15.995724Z');
CREATE TABLE organizations (
            id INTEGER PRIMARY KEY,
            slug TEXT NOT NULL UNIQUE,
            name TEXT NOT NULL,
            date_created TEXT NOT NULL
        , dsn_endpoint TEXT);
INSERT INTO "organizations" VALUES(1,'acme','Acme','2026-12-08T01:13:15.994120Z',NULL);
CREATE TABLE projects (
            id INTEGER PRIMARY KEY,
            organization_id INTEGER NOT NULL REFERENCES organizations(id),
            slug TEXT NOT NULL,
            name TEXT NOT NULL,
            date_created TEXT NOT NULL,
            UNIQUE (organization_id, slug)
        );
INSERT INTO "projects" VALUES(1,1,'web','web','2026-12-08T01:13:15.994908Z');
CREATE TABLE request_log (
            id INTEGER PRIMARY KEY,
            method TEXT NOT NULL,
            path TEXT NOT NULL,
            query TEXT NOT NULL,
            status INTEGER NOT NULL,
            validated INTEGER NOT NULL,
            date TEXT NOT NULL
        );
INSERT INTO "request_log" VALUES(1,'GET','/','',200,1,'2026-12-08T01:13:15.997324Z');
CREATE TABLE start_state (name TEXT PRIMARY KEY, data TEXT NOT NULL);
INSERT INTO "start_state" VALUES('organizations','[{"id": 1, "slug": "acme", "name": "Acme", "date_created": "2026-12-08T01:13:15.994120Z", "dsn_endpoint": null}]');
INSERT INTO "start_state" VALUES('projects','[{"id": 1, "organization_id": 1, "slug": "web", "name": "web", "date_created": "2026-12-08T01:13:15.994908Z"}]');
INSERT INTO "start_state" VALUES('keys','[{"id": 1, "project_id": 1, "label": "Default", "public_key": "2a494bc1bb8adb8dd4f34df571a9a498", "secret_key": "2c85b5a437852a67f278ffeaa5925a5c", "status": 0, "use_case": "user", "rate_limit_count": null, "rate_limit_window": null, "data": "{\"dynamicSdkLoaderOptions\": {\"hasPerformance\": true, \"hasReplay\": true}}", "date_added": "2026-12-08T01:13:15.995027Z"}, {"id": 2, "project_id": 1, "label": "CI", "public_key": "5b5fb42b19bd55d0b1965d2fda978bba", "secret_key": "0204794cd3b306235198f8c14e52debf", "status": 0, "use_case": "user", "rate_limit_count": null, "rate_limit_window": null, "data": "{\"dynamicSdkLoaderOptions\": {\"hasPerformance\": true, \"hasReplay\": true}}", "date_added": "2026-12-08T01:13:15.995724Z"}]');
INSERT INTO "start_state" VALUES('tokens','[{"id": 1, "token_hash": "8b7d507cddc8d8950f283613360e85abbfcc4d245494ee90b1e6d1585bd2f37b", "organization_id": 1, "scopes": "project:read project:write project:admin", "is_superuser": 0, "label": "ci", "date_created": "2026-12-08T01:13:15.996605Z"}]');
INSERT INTO "start_state" VALUES('sequence','2');
CREATE TABLE tokens (
            id INTEGER PRIMARY KEY,
            token_hash TEXT NOT NULL UNIQUE,
            organization_id INTEGER REFERENCES organizations(id),
            scopes TEXT NOT NULL,
            is_superuser INTEGER NOT NULL DEFAULT 0,
            label TEXT NOT NULL DEFAULT '',
            date_created TEXT NOT NULL
        );
INSERT INTO "tokens" VALUES(1,'8b7d507cddc8d8950f283613360e85abbfcc4d245494ee90b1e6d1585bd2f37b',1,'project:read project:write project:admin',0,'ci','2026-12-08T01:13:15.996605Z');
CREATE UNIQUE INDEX "idx__sqlite_migrations_migration_set_name"
    ON "_sqlite_migrations" ("migration_set", "name");
CREATE INDEX keys_by_project ON keys (project_id, id);
CREATE INDEX keys_by_project_status ON keys (project_id, status, id);
DELETE FROM "sqlite_sequence";
INSERT INTO "sqlite_sequence" VALUES('keys',2);
COMMIT;
