"""Storage: the backend the `database` setting names (`backend`: SQLite in `sqlite`, PostgreSQL in
`postgres`), the repository of plain functions over it that raises domain errors, the storage
faults told once (`faults`), and the fixtures files loaded at start. Nothing here speaks HTTP.
"""
