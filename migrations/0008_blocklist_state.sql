-- The relay JSON's `synced` compares a relay's applied block-list rows with the number of active
-- entries: counted from this index, not a scan of the list.
CREATE INDEX blocklist_state ON blocklist(state);
