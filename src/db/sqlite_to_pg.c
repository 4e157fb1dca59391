/* `caravel migrate` (db/sqlite_to_pg.h): SQLite file -> empty PostgreSQL database, in one
 * transaction, checked before COMMIT. */
#include "db/sqlite_to_pg.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include "db/db.h"
#include "db/migrations.h"
#include "util/clock.h"

/* Our schema has a dozen tables of at most ~30 columns; the caps only bound a foreign file. */
#define MAX_TABLES 64
#define MAX_COLS 64
#define NAME_LEN 64
#define COPY_CHUNK (256 * 1024)
#define CHECK_SQL_MAX 8192

struct table {
    char name[NAME_LEN];
    char cols[MAX_COLS][NAME_LEN];
    int is_int[MAX_COLS]; /* declared INTEGER-like: summed by the check */
    int ncols;
    int with_rowid; /* the PostgreSQL table has a rowid column that SQLite's rowid fills */
    int64_t rows;
    int placed; /* ordering */
};

struct mig {
    sqlite3 *src;
    struct db_conn *dst;
    PGconn *pg;
    struct table t[MAX_TABLES];
    size_t n;
    char err[1024];
    uint64_t ms[4];       /* schema, copy, sequences and checks, commit */
    char buf[COPY_CHUNK]; /* COPY data waiting to be sent */
    size_t len;
};

static int fail(struct mig *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct mig *m, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->err, sizeof(m->err), fmt, ap);
    va_end(ap);
    return -1;
}

/* Names come from the SQLite file and are put into SQL: only [a-z0-9_], as ours are. */
static int plain_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= NAME_LEN)
        return 0;
    for (; *s; s++)
        if (!(islower((unsigned char)*s) || isdigit((unsigned char)*s) || *s == '_'))
            return 0;
    return 1;
}

/* Runs a statement without rows on PostgreSQL. */
static int pg_cmd(struct mig *m, const char *sql)
{
    PGresult *r = PQexec(m->pg, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    if (!ok)
        fail(m, "PostgreSQL: %s", PQresultErrorMessage(r));
    PQclear(r);
    return ok ? 0 : -1;
}

/* A query with rows on PostgreSQL; the caller clears the result. NULL on error. */
static PGresult *pg_rows(struct mig *m, const char *sql, const char *param)
{
    PGresult *r =
        PQexecParams(m->pg, sql, param ? 1 : 0, NULL, param ? &param : NULL, NULL, NULL, 0);
    if (PQresultStatus(r) == PGRES_TUPLES_OK)
        return r;
    fail(m, "PostgreSQL: %s", PQresultErrorMessage(r));
    PQclear(r);
    return NULL;
}

static sqlite3_stmt *sq_prepare(struct mig *m, const char *sql)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(m->src, sql, -1, &st, NULL) != SQLITE_OK) {
        fail(m, "SQLite: %s", sqlite3_errmsg(m->src));
        sqlite3_finalize(st);
        return NULL;
    }
    return st;
}

/* ---- the two ends ---- */

static int open_source(struct mig *m, const char *from)
{
    const char *path = strncmp(from, "sqlite://", 9) == 0 ? from + 9 : NULL;
    struct stat sb;
    if (!path || !*path)
        return fail(m, "--from must be sqlite://PATH");
    if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode))
        return fail(m, "--from: no SQLite database at %s", path);
    if (sqlite3_open_v2(path, &m->src, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
        return fail(m, "--from: cannot open %s: %s", path, sqlite3_errmsg(m->src));
    sqlite3_busy_timeout(m->src, 5000);
    /* One read transaction: every table and every check sees the same snapshot. */
    char *e = NULL;
    if (sqlite3_exec(m->src, "BEGIN; SELECT count(*) FROM sqlite_master", NULL, NULL, &e) !=
        SQLITE_OK) {
        fail(m, "--from %s: %s", path, e ? e : "not a database");
        sqlite3_free(e);
        return -1;
    }
    return 0;
}

/* The file must hold exactly the migrations this binary has: the copy is by column name into
 * the schema this binary creates. */
static int check_source_version(struct mig *m)
{
    sqlite3_stmt *st = sq_prepare(m, "SELECT name FROM schema_migrations ORDER BY name");
    if (!st)
        return fail(m, "--from is not a caravel database (no schema_migrations)");
    size_t i = 0;
    int rc = 0;
    while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        if (i >= n_migrations || !name || strcmp(name, migrations[i].name) != 0)
            rc = fail(m,
                      "--from has migration %s, which this caravel does not have: use the "
                      "caravel version that last ran on it",
                      name ? name : "(null)");
        i++;
    }
    sqlite3_finalize(st);
    if (rc == 0 && i < n_migrations)
        rc = fail(m,
                  "--from lacks migration %s: start this caravel version on it once (it "
                  "migrates at start-up), stop it, then run migrate again",
                  migrations[i].name);
    return rc;
}

static int open_target(struct mig *m, const char *to)
{
    if (strncmp(to, "postgres://", 11) != 0 && strncmp(to, "postgresql://", 13) != 0)
        return fail(m, "--to must be postgres://... or postgresql://...");
    if (db_conn_open(&m->dst, to, 0) != 0)
        return fail(m, "--to: cannot connect (see the log line above)");
    m->pg = (PGconn *)db_conn_pg(m->dst);
    return m->pg ? 0 : fail(m, "--to is not a PostgreSQL connection");
}

/* Refuses a database that holds anything of its own: migrate never merges. */
static int check_target_empty(struct mig *m)
{
    PGresult *r = pg_rows(m,
                          "SELECT n.nspname || '.' || c.relname FROM pg_class c "
                          "JOIN pg_namespace n ON n.oid = c.relnamespace "
                          "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') "
                          "AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
                          "AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE "
                          "'pg\\_temp%' ORDER BY 1 LIMIT 1",
                          NULL);
    if (!r)
        return -1;
    int rc = 0;
    if (PQntuples(r) > 0)
        rc = fail(m,
                  "the target database is not empty (it has %s): migrate copies into a new, "
                  "empty database only (createdb), never into one a caravel has used",
                  PQgetvalue(r, 0, 0));
    PQclear(r);
    return rc;
}

/* ---- the tables ---- */

static int read_columns(struct mig *m, struct table *t)
{
    char sql[128];
    snprintf(sql, sizeof(sql), "PRAGMA table_info(\"%s\")", t->name);
    sqlite3_stmt *st = sq_prepare(m, sql);
    if (!st)
        return -1;
    int rc = 0;
    while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
        const char *col = (const char *)sqlite3_column_text(st, 1);
        const char *type = (const char *)sqlite3_column_text(st, 2);
        if (!col || !plain_name(col) || t->ncols == MAX_COLS) {
            rc = fail(m, "table %s: unexpected column %s", t->name, col ? col : "(null)");
            break;
        }
        snprintf(t->cols[t->ncols], NAME_LEN, "%s", col);
        t->is_int[t->ncols] = type && (strstr(type, "INT") || strstr(type, "int"));
        t->ncols++;
    }
    sqlite3_finalize(st);
    return rc;
}

static int read_tables(struct mig *m)
{
    sqlite3_stmt *st = sq_prepare(m, "SELECT name FROM sqlite_master WHERE type = 'table' AND "
                                     "name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND "
                                     "name <> 'schema_migrations' ORDER BY name");
    if (!st)
        return -1;
    int rc = 0;
    while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        if (!name || !plain_name(name) || m->n == MAX_TABLES) {
            rc = fail(m, "unexpected table %s in the SQLite file", name ? name : "(null)");
            break;
        }
        struct table *t = &m->t[m->n++];
        snprintf(t->name, NAME_LEN, "%s", name);
        rc = read_columns(m, t);
    }
    sqlite3_finalize(st);
    return rc;
}

/* 1 if table t references a table not placed yet (other than itself). */
static int waits_for_parent(struct mig *m, const struct table *t)
{
    char sql[128];
    snprintf(sql, sizeof(sql), "SELECT \"table\" FROM pragma_foreign_key_list('%s')", t->name);
    sqlite3_stmt *st = sq_prepare(m, sql);
    if (!st)
        return -1;
    int waits = 0;
    while (!waits && sqlite3_step(st) == SQLITE_ROW) {
        const char *parent = (const char *)sqlite3_column_text(st, 0);
        for (size_t i = 0; parent && i < m->n; i++)
            if (strcmp(m->t[i].name, parent) == 0 && !m->t[i].placed && &m->t[i] != t)
                waits = 1;
    }
    sqlite3_finalize(st);
    return waits;
}

/* Referenced tables first (the foreign keys are checked row by row during COPY). */
static int order_tables(struct mig *m)
{
    struct table sorted[MAX_TABLES];
    size_t done = 0;
    while (done < m->n) {
        size_t before = done;
        for (size_t i = 0; i < m->n; i++) {
            if (m->t[i].placed)
                continue;
            int w = waits_for_parent(m, &m->t[i]);
            if (w < 0)
                return -1;
            if (!w) {
                m->t[i].placed = 1;
                sorted[done++] = m->t[i];
            }
        }
        if (done == before)
            return fail(m, "the foreign keys between the tables form a cycle");
    }
    memcpy(m->t, sorted, m->n * sizeof(sorted[0]));
    return 0;
}

/* Every SQLite column must exist in PostgreSQL; a rowid column there takes SQLite's rowid. */
static int match_target_columns(struct mig *m, struct table *t)
{
    PGresult *r = pg_rows(m,
                          "SELECT column_name FROM information_schema.columns WHERE "
                          "table_schema = current_schema() AND table_name = $1",
                          t->name);
    if (!r)
        return -1;
    int rc = PQntuples(r) ? 0 : fail(m, "table %s is missing in PostgreSQL", t->name);
    for (int c = 0; rc == 0 && c < t->ncols; c++) {
        int found = 0;
        for (int i = 0; i < PQntuples(r); i++)
            found |= strcmp(PQgetvalue(r, i, 0), t->cols[c]) == 0;
        if (!found)
            rc = fail(m, "column %s.%s is missing in PostgreSQL", t->name, t->cols[c]);
    }
    for (int i = 0; rc == 0 && i < PQntuples(r); i++)
        t->with_rowid |= strcmp(PQgetvalue(r, i, 0), "rowid") == 0;
    PQclear(r);
    return rc;
}

/* ---- COPY ---- */

static int flush(struct mig *m)
{
    if (m->len && PQputCopyData(m->pg, m->buf, (int)m->len) != 1)
        return fail(m, "PostgreSQL: %s", PQerrorMessage(m->pg));
    m->len = 0;
    return 0;
}

static int put(struct mig *m, const char *s, size_t n)
{
    while (n) {
        if (m->len == sizeof(m->buf) && flush(m) != 0)
            return -1;
        size_t k = sizeof(m->buf) - m->len < n ? sizeof(m->buf) - m->len : n;
        memcpy(m->buf + m->len, s, k);
        m->len += k;
        s += k;
        n -= k;
    }
    return 0;
}

/* One value in COPY's text format: \N for NULL; backslash, tab, newline, CR escaped. */
static int put_value(struct mig *m, sqlite3_stmt *st, int col)
{
    char num[40];
    switch (sqlite3_column_type(st, col)) {
    case SQLITE_NULL:
        return put(m, "\\N", 2);
    case SQLITE_INTEGER:
        snprintf(num, sizeof(num), "%" PRId64, (int64_t)sqlite3_column_int64(st, col));
        return put(m, num, strlen(num));
    case SQLITE_FLOAT:
        snprintf(num, sizeof(num), "%.17g", sqlite3_column_double(st, col));
        return put(m, num, strlen(num));
    case SQLITE_BLOB: {
        const unsigned char *b = sqlite3_column_blob(st, col);
        int n = sqlite3_column_bytes(st, col);
        int rc = put(m, "\\\\x", 3);
        for (int i = 0; rc == 0 && i < n; i++) {
            snprintf(num, sizeof(num), "%02x", b[i]);
            rc = put(m, num, 2);
        }
        return rc;
    }
    default:
        break;
    }
    const char *s = (const char *)sqlite3_column_text(st, col);
    int n = sqlite3_column_bytes(st, col);
    int rc = 0;
    for (int i = 0; rc == 0 && i < n; i++) {
        const char *esc = s[i] == '\\'   ? "\\\\"
                          : s[i] == '\t' ? "\\t"
                          : s[i] == '\n' ? "\\n"
                          : s[i] == '\r' ? "\\r"
                                         : NULL;
        rc = esc ? put(m, esc, 2) : put(m, &s[i], 1);
    }
    return rc;
}

/* "rowid, a, b" (quoted) for both ends. */
static void column_list(const struct table *t, char *out, size_t cap)
{
    size_t n = (size_t)snprintf(out, cap, "%s", t->with_rowid ? "rowid" : "");
    for (int c = 0; c < t->ncols && n < cap; c++)
        n += (size_t)snprintf(out + n, cap - n, "%s\"%s\"", n ? ", " : "", t->cols[c]);
}

static int copy_rows(struct mig *m, struct table *t, sqlite3_stmt *st)
{
    int ncol = sqlite3_column_count(st), rc = 0, step;
    while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
        for (int c = 0; rc == 0 && c < ncol; c++)
            rc = (c ? put(m, "\t", 1) : 0) || put_value(m, st, c) ? -1 : 0;
        rc = rc == 0 ? put(m, "\n", 1) : rc;
        t->rows++;
    }
    if (rc == 0 && step != SQLITE_DONE)
        rc = fail(m, "SQLite: reading %s: %s", t->name, sqlite3_errmsg(m->src));
    return rc == 0 ? flush(m) : rc;
}

/* Ends the COPY (aborted when rows failed) and collects the server's verdict. */
static int copy_end(struct mig *m, struct table *t, int rc)
{
    char saved[sizeof(m->err)];
    memcpy(saved, m->err, sizeof(saved));
    if (PQputCopyEnd(m->pg, rc == 0 ? NULL : "migrate: reading the SQLite file failed") != 1)
        rc = fail(m, "PostgreSQL: %s", PQerrorMessage(m->pg));
    PGresult *r;
    while ((r = PQgetResult(m->pg)) != NULL) {
        if (PQresultStatus(r) != PGRES_COMMAND_OK && rc == 0)
            rc = fail(m, "copying %s: %s", t->name, PQresultErrorMessage(r));
        else if (PQresultStatus(r) != PGRES_COMMAND_OK)
            memcpy(m->err, saved, sizeof(saved)); /* our reason, not the echo of it */
        PQclear(r);
    }
    return rc;
}

static int copy_table(struct mig *m, struct table *t)
{
    char cols[MAX_COLS * (NAME_LEN + 4) + 16], sql[sizeof(cols) + 128];
    column_list(t, cols, sizeof(cols));
    snprintf(sql, sizeof(sql), "SELECT %s FROM \"%s\"", cols, t->name);
    sqlite3_stmt *st = sq_prepare(m, sql);
    if (!st)
        return -1;
    snprintf(sql, sizeof(sql), "COPY \"%s\" (%s) FROM STDIN", t->name, cols);
    PGresult *r = PQexec(m->pg, sql);
    int rc = PQresultStatus(r) == PGRES_COPY_IN
                 ? 0
                 : fail(m, "copying %s: %s", t->name, PQresultErrorMessage(r));
    PQclear(r);
    if (rc == 0)
        rc = copy_end(m, t, copy_rows(m, t, st));
    sqlite3_finalize(st);
    return rc;
}

/* Rows the migrations themselves inserted (a cursor's starting point) give way to the copy. */
static int clear_seeded(struct mig *m)
{
    char sql[NAME_LEN + 32];
    for (size_t i = m->n; i-- > 0;) {
        snprintf(sql, sizeof(sql), "DELETE FROM \"%s\"", m->t[i].name);
        if (pg_cmd(m, sql) != 0)
            return -1;
    }
    return 0;
}

/* Identity columns continue after the highest copied id. */
static int set_sequences(struct mig *m)
{
    PGresult *r = pg_rows(m,
                          "SELECT table_name, column_name FROM information_schema.columns "
                          "WHERE table_schema = current_schema() AND (is_identity = 'YES' OR "
                          "column_default LIKE 'nextval(%')",
                          NULL);
    if (!r)
        return -1;
    int rc = 0;
    for (int i = 0; rc == 0 && i < PQntuples(r); i++) {
        const char *tn = PQgetvalue(r, i, 0), *cn = PQgetvalue(r, i, 1);
        char sql[4 * NAME_LEN + 160];
        if (!plain_name(tn) || !plain_name(cn)) {
            rc = fail(m, "unexpected identity column %s.%s", tn, cn);
            break;
        }
        snprintf(sql, sizeof(sql),
                 "SELECT setval(pg_get_serial_sequence('\"%s\"', '%s'), "
                 "COALESCE(max(\"%s\"), 0) + 1, false) FROM \"%s\"",
                 tn, cn, cn, tn);
        rc = pg_cmd(m, sql);
    }
    PQclear(r);
    return rc;
}

/* ---- checks ---- */

/* "SELECT count(*), sum(a), ... FROM t": the same text on both ends. */
static void check_sql(const struct table *t, char *out, size_t cap)
{
    size_t n = (size_t)snprintf(out, cap, "SELECT count(*)");
    for (int c = 0; c < t->ncols && n < cap; c++)
        if (t->is_int[c])
            n += (size_t)snprintf(out + n, cap - n, ", sum(\"%s\")", t->cols[c]);
    if (n < cap)
        snprintf(out + n, cap - n, " FROM \"%s\"", t->name);
}

static int check_table(struct mig *m, const struct table *t)
{
    char sql[CHECK_SQL_MAX];
    check_sql(t, sql, sizeof(sql));
    sqlite3_stmt *st = sq_prepare(m, sql);
    PGresult *r = st ? pg_rows(m, sql, NULL) : NULL;
    int rc = r && sqlite3_step(st) == SQLITE_ROW && PQntuples(r) == 1 ? 0 : -1;
    if (rc != 0 && !m->err[0])
        fail(m, "checking %s: %s", t->name, sqlite3_errmsg(m->src));
    for (int c = 0; rc == 0 && c < sqlite3_column_count(st); c++) {
        const char *a = (const char *)sqlite3_column_text(st, c);
        const char *b = PQgetisnull(r, 0, c) ? NULL : PQgetvalue(r, 0, c);
        if ((a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0))
            rc = fail(m, "check failed on %s: %s is %s in SQLite, %s in PostgreSQL", t->name,
                      sqlite3_column_name(st, c), a ? a : "NULL", b ? b : "NULL");
    }
    PQclear(r);
    sqlite3_finalize(st);
    return rc;
}

/* One number from SQLite for the report (0 if the table or column is not there). */
static int64_t sq_number(struct mig *m, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int64_t v = 0;
    if (sqlite3_prepare_v2(m->src, sql, -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static void report(struct mig *m, FILE *out, uint64_t ms)
{
    int64_t total = 0;
    for (size_t i = 0; i < m->n; i++)
        total += m->t[i].rows;
    fprintf(out,
            "migrate: copied %zu tables, %" PRId64 " rows into PostgreSQL database \"%s\" on "
            "%s:%s in %" PRIu64 " ms (one transaction, committed)\n",
            m->n, total, PQdb(m->pg), PQhost(m->pg), PQport(m->pg), ms);
    fprintf(out,
            "  (schema %" PRIu64 " ms, copy %" PRIu64 " ms, sequences and checks %" PRIu64
            " ms, commit %" PRIu64 " ms)\n",
            m->ms[0], m->ms[1], m->ms[2], m->ms[3]);
    for (size_t i = 0; i < m->n; i++)
        fprintf(out, "  %-24s %10" PRId64 " rows\n", m->t[i].name, m->t[i].rows);
    fprintf(out,
            "checked before COMMIT: row count and the sum of every integer column of every "
            "table equal on both sides; among them invoices %" PRId64 " (amount %" PRId64
            " sats), payment attempts %" PRId64 " (%" PRId64 " paid)\n",
            sq_number(m, "SELECT count(*) FROM invoice"),
            sq_number(m, "SELECT COALESCE(sum(amount), 0) FROM invoice"),
            sq_number(m, "SELECT count(*) FROM payment_attempt"),
            sq_number(m, "SELECT count(*) FROM payment_attempt WHERE state = 'paid'"));
}

/* ---- the whole ---- */

static int copy_all(struct mig *m)
{
    uint64_t t = clock_mono_ms();
    if (pg_cmd(m, "BEGIN") != 0)
        return -1;
    if (db_migrate_tx(m->dst) != 0)
        return fail(m, "applying the schema to the target failed (see the log line above)");
    int rc = clear_seeded(m);
    for (size_t i = 0; rc == 0 && i < m->n; i++)
        rc = match_target_columns(m, &m->t[i]);
    m->ms[0] = clock_mono_ms() - t;
    for (size_t i = 0; rc == 0 && i < m->n; i++)
        rc = copy_table(m, &m->t[i]);
    m->ms[1] = clock_mono_ms() - t - m->ms[0];
    rc = rc == 0 ? set_sequences(m) : rc;
    for (size_t i = 0; rc == 0 && i < m->n; i++)
        rc = check_table(m, &m->t[i]);
    m->ms[2] = clock_mono_ms() - t - m->ms[0] - m->ms[1];
    rc = rc == 0 ? pg_cmd(m, "COMMIT") : rc;
    m->ms[3] = clock_mono_ms() - t - m->ms[0] - m->ms[1] - m->ms[2];
    return rc;
}

int db_sqlite_to_pg(const char *from, const char *to, FILE *out)
{
    struct mig *m = calloc(1, sizeof(*m));
    if (!m) {
        fprintf(out, "migrate: out of memory\n");
        return 1;
    }
    uint64_t t0 = clock_mono_ms();
    int began = 0;
    int rc = open_source(m, from);
    rc = rc == 0 ? check_source_version(m) : rc;
    rc = rc == 0 ? read_tables(m) : rc;
    rc = rc == 0 ? order_tables(m) : rc;
    rc = rc == 0 ? open_target(m, to) : rc;
    rc = rc == 0 ? check_target_empty(m) : rc;
    if (rc == 0) {
        began = 1;
        rc = copy_all(m);
    }
    if (rc == 0) {
        report(m, out, clock_mono_ms() - t0);
    } else {
        if (began && m->pg && PQtransactionStatus(m->pg) != PQTRANS_IDLE) {
            PGresult *r = PQexec(m->pg, "ROLLBACK");
            PQclear(r);
        }
        fprintf(out, "migrate: %s\nmigrate: nothing was %s\n", m->err,
                began ? "committed: the target is as empty as before (rolled back)" : "written");
    }
    if (m->src) {
        sqlite3_exec(m->src, "ROLLBACK", NULL, NULL, NULL);
        sqlite3_close(m->src);
    }
    db_conn_close(m->dst);
    free(m);
    return rc == 0 ? 0 : 1;
}
