/* `caravel migrate`: copies a stopped SQLite deployment into an empty PostgreSQL database.
 *
 * One PostgreSQL transaction does everything: the schema (the embedded migrations, as
 * db_migrate_tx applies them), the rows of every table (COPY, referenced tables first, every
 * column by name, SQLite's rowid into the PostgreSQL tables that carry one), the identity
 * sequences moved past the copied ids, and the checks: per table, the row count and the sum of
 * every integer column (so invoice amounts and payment attempts among them) read back from
 * PostgreSQL inside the transaction and compared with the same SQLite snapshot. Any failure
 * rolls the whole transaction back, so the target stays empty. A target that already holds a
 * table, view or sequence is refused before anything is written; so is a SQLite file whose
 * applied migrations are not exactly this binary's (it would copy another schema).
 *
 * Synchronous, for the command line only (no loop, no pool; the calling thread owns both
 * connections). The SQLite file is opened read-only. */
#ifndef CARAVEL_DB_SQLITE_TO_PG_H
#define CARAVEL_DB_SQLITE_TO_PG_H

#include <stdio.h>

/* from: sqlite://PATH (an existing file); to: postgres://... or postgresql://... Writes what
 * it did, or why it did nothing, to out (never the target URL's password). Returns 0, or 1
 * when nothing was committed. */
int db_sqlite_to_pg(const char *from, const char *to, FILE *out);

#endif
