-- The network a run request asked for instead of its manifest's (none: the manifest's).
ALTER TABLE runs ADD COLUMN network TEXT;
