-- An export delta's run: how many rows its input held of each kind (JSON of new,
-- modified, unchanged, deleted), counted by cde when it split the feed.
ALTER TABLE runs ADD COLUMN delta TEXT;
