"""Storage: engine and sessions, tables, migrations, and the queries each stage needs."""
