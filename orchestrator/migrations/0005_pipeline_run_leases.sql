-- The process executing a pipeline run renews its lease on it; only a run whose lease
-- lapsed (its executor died) is ended as interrupted.
ALTER TABLE pipeline_runs ADD COLUMN lease_owner TEXT;
ALTER TABLE pipeline_runs ADD COLUMN lease_until TEXT;
