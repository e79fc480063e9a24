-- The process executing a started run, and until when it has promised to renew that.
-- Another process adopts the run only once the lease has lapsed.
ALTER TABLE runs ADD COLUMN lease_owner TEXT;
ALTER TABLE runs ADD COLUMN lease_until TEXT;
