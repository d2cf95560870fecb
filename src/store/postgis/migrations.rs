//! The PostGIS schema, as numbered migrations.

/// Every migration with its version, in order.
pub(super) const MIGRATIONS: [(i32, &str); 10] = [
    (1, MIGRATION_1),
    (2, MIGRATION_2),
    (3, MIGRATION_3),
    (4, MIGRATION_4),
    (5, MIGRATION_5),
    (6, MIGRATION_6),
    (7, MIGRATION_7),
    (8, MIGRATION_8),
    (9, MIGRATION_9),
    (10, MIGRATION_10),
];

/// Version 10: fabric blobs in a table of their own, referenced by the plans that share them (a
/// draft copy or a rebalance that keeps a community's fabric writes a reference, not megabytes).
pub(super) const MIGRATION_10: &str = "
CREATE TABLE fabric_blobs (id bigserial PRIMARY KEY, fabric bytea NOT NULL);
ALTER TABLE plan_fabrics ADD COLUMN blob bigint REFERENCES fabric_blobs (id);
INSERT INTO fabric_blobs (id, fabric)
  SELECT row_number() OVER (ORDER BY plan_id, community), fabric FROM plan_fabrics;
UPDATE plan_fabrics f SET blob = x.n
  FROM (SELECT plan_id, community, row_number() OVER (ORDER BY plan_id, community) AS n FROM plan_fabrics) x
  WHERE x.plan_id = f.plan_id AND x.community = f.community;
SELECT setval(pg_get_serial_sequence('fabric_blobs', 'id'), coalesce(max(id), 0) + 1, false) FROM fabric_blobs;
ALTER TABLE plan_fabrics DROP COLUMN fabric;
ALTER TABLE plan_fabrics ALTER COLUMN blob SET NOT NULL;
CREATE INDEX plan_fabrics_blob ON plan_fabrics (blob);
";

/// The edit log by status: an undo, a redo and a new edit find their rows without reading the
/// whole log.
pub(super) const MIGRATION_9: &str =
    "CREATE INDEX IF NOT EXISTS plan_edits_status ON plan_edits (plan_id, status, seq);";

/// Each plan's exception register: the grids published out of band, with why.
pub(super) const MIGRATION_8: &str = "
CREATE TABLE plan_exceptions (plan_id bigint NOT NULL REFERENCES plans(id), grid_code text NOT NULL,
  band text NOT NULL, households bigint NOT NULL, reason text NOT NULL, who text NOT NULL,
  at timestamptz NOT NULL, PRIMARY KEY (plan_id, grid_code));
";

/// Version 7 moved the GeoPackage's plan states out of the fabric rows; here an unchanged column
/// of a row keeps its TOASTed value in place, so the state stays where it is.
pub(super) const MIGRATION_7: &str = "SELECT 1;";

/// Grids in force are found from an index on their times, not by filtering every published
/// generation's rows.
pub(super) const MIGRATION_6: &str = "CREATE INDEX grids_in_force ON grids (valid_to, valid_from);";

/// The audit log records the client's address and is append-only: updates, deletes and
/// truncation are refused by triggers (for every role, the owner included).
pub(super) const MIGRATION_5: &str = "
ALTER TABLE audit_log ADD COLUMN client text;
CREATE FUNCTION wangge_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'the audit log is append-only';
END $$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
  FOR EACH ROW EXECUTE FUNCTION wangge_audit_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION wangge_audit_append_only();
";

/// Regrid jobs live in the store (ids survive restarts; every server sees them).
pub(super) const MIGRATION_4: &str = "
CREATE TABLE wangge_jobs (id bigserial PRIMARY KEY, state text NOT NULL CHECK (state IN ('running', 'done', 'failed')),
  done bigint NOT NULL DEFAULT 0, total bigint NOT NULL, plan bigint, error text, who text NOT NULL,
  started timestamptz NOT NULL DEFAULT now(), updated timestamptz NOT NULL DEFAULT now());
";

pub(super) const MIGRATION_1: &str = "
CREATE TABLE streets (fid bigserial UNIQUE, code text PRIMARY KEY, communities integer NOT NULL DEFAULT 0, households bigint NOT NULL DEFAULT 0,
  geom geometry(MultiPolygon, 4326));
CREATE INDEX streets_geom ON streets USING gist (geom);
CREATE TABLE communities (fid bigserial UNIQUE, code text PRIMARY KEY, name text, street text, households bigint NOT NULL DEFAULT 0,
  buildings bigint NOT NULL DEFAULT 0, updated_at timestamptz, geom geometry(MultiPolygon, 4326) NOT NULL);
CREATE INDEX communities_geom ON communities USING gist (geom);
CREATE TABLE buildings (fid bigserial UNIQUE, building_id text PRIMARY KEY, community text, households integer NOT NULL,
  household_source text NOT NULL, updated_at timestamptz, geom geometry(MultiPolygon, 4326) NOT NULL);
CREATE INDEX buildings_geom ON buildings USING gist (geom);
CREATE INDEX buildings_community ON buildings (community);
CREATE TABLE roads (fid bigserial PRIMARY KEY, highway text, name text, geom geometry(LineString, 4326) NOT NULL);
CREATE INDEX roads_geom ON roads USING gist (geom);
CREATE TABLE plans (id bigserial PRIMARY KEY, status text NOT NULL CHECK (status IN ('draft', 'published', 'retired')),
  communities jsonb NOT NULL, valid_from timestamptz, valid_to timestamptz, created_by text NOT NULL,
  created_at timestamptz NOT NULL, published_at timestamptz, params jsonb NOT NULL, metrics jsonb NOT NULL,
  version bigint NOT NULL DEFAULT 1);
CREATE TABLE grids (fid bigserial PRIMARY KEY, plan_id bigint NOT NULL REFERENCES plans (id), code text NOT NULL,
  name text, community text NOT NULL REFERENCES communities (code), street text, households bigint NOT NULL,
  buildings bigint NOT NULL, weight double precision NOT NULL, band text NOT NULL, valid_from timestamptz,
  valid_to timestamptz, geom geometry(MultiPolygon, 4326) NOT NULL, UNIQUE (plan_id, code));
CREATE INDEX grids_geom ON grids USING gist (geom);
CREATE INDEX grids_community ON grids (community);
CREATE TABLE plan_assignments (plan_id bigint NOT NULL REFERENCES plans (id), building_id text NOT NULL,
  grid_code text NOT NULL, PRIMARY KEY (plan_id, building_id));
CREATE TABLE grid_workers (grid_code text PRIMARY KEY, name text NOT NULL, phone text, updated_at timestamptz);
CREATE TABLE incidents (fid bigserial UNIQUE, incident_id text PRIMARY KEY, category text NOT NULL, description text NOT NULL,
  source text NOT NULL, reporter text, media jsonb NOT NULL, reported_at timestamptz NOT NULL, grid text,
  community text, street text, state text NOT NULL, level text NOT NULL, unit text, due_at timestamptz,
  closed_at timestamptz, escalations integer NOT NULL, returns integer NOT NULL, score smallint,
  duplicate_of text, geom geometry(Point, 4326) NOT NULL);
CREATE INDEX incidents_geom ON incidents USING gist (geom);
CREATE INDEX incidents_reported ON incidents (reported_at);
CREATE INDEX incidents_grid ON incidents (grid);
CREATE TABLE incident_history (incident_id text NOT NULL REFERENCES incidents (incident_id), seq integer NOT NULL,
  at timestamptz NOT NULL, who text NOT NULL, action text NOT NULL, from_state text NOT NULL, to_state text NOT NULL,
  note text NOT NULL, PRIMARY KEY (incident_id, seq));
CREATE TABLE api_tokens (id bigserial PRIMARY KEY, token_hash text NOT NULL UNIQUE, role text NOT NULL, scope text,
  label text NOT NULL, created_at timestamptz NOT NULL, revoked_at timestamptz);
CREATE TABLE audit_log (id bigserial PRIMARY KEY, at timestamptz NOT NULL, who text NOT NULL, action text NOT NULL,
  target text NOT NULL, detail text NOT NULL);
";

/// Version 3: the grid worker's photo (for printed signboards).
pub(super) const MIGRATION_3: &str = "ALTER TABLE grid_workers ADD COLUMN photo bytea;";

/// Version 2: each plan's fabrics (tessellation and state per community) and its edit log.
pub(super) const MIGRATION_2: &str = "
CREATE TABLE plan_fabrics (plan_id bigint NOT NULL REFERENCES plans (id), community text NOT NULL,
  fabric bytea NOT NULL, state text NOT NULL, PRIMARY KEY (plan_id, community));
CREATE TABLE plan_edits (plan_id bigint NOT NULL REFERENCES plans (id), seq integer NOT NULL,
  at timestamptz NOT NULL, who text NOT NULL, community text NOT NULL, op text NOT NULL, reason text,
  summary text NOT NULL, status text NOT NULL CHECK (status IN ('applied', 'undone', 'discarded')),
  before text NOT NULL, after text NOT NULL, PRIMARY KEY (plan_id, seq));
";
