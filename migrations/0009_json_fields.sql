-- Version 9 adds, on PostgreSQL, `aegis_json_text(document, path)`: a field of a JSON text as
-- text, NULL when the text is not JSON (migrations/postgres/0009_json_fields.sql). The shared
-- SQL (core::sql::Engine::json_text) calls it where SQLite uses json_extract, which SQLite
-- has built in. The file exists so that both engines go through the same numbered versions.
SELECT 1;
