/* PostgreSQL behind the statement API (db/conn.h): synchronous libpq on the pool thread that
 * holds the connection, like SQLite. Each statement is translated (db/dialect.h) and
 * prepared once per connection as "s<index>"; db_step executes it on its first call with
 * the bound parameters as text and then walks the result's rows.
 *
 * Round trips: a write batch is BEGIN, then per job SAVEPOINT, its statements and RELEASE,
 * then COMMIT. Each statement waited for its answer, so the transaction statements were a
 * quarter of a relay creation's round trips. BEGIN, SAVEPOINT and RELEASE now wait on the
 * connection (pg_tx) and go out in libpq's pipeline mode together with the next statement,
 * one round trip for all: the first statement of a job carries the previous job's RELEASE and
 * its own SAVEPOINT, the COMMIT the last RELEASE. The server runs them in order and skips the
 * rest after an error, so the first error is the round trip's result, as if each had been
 * sent alone; a RELEASE that fails shows in the next job's statement (the batch fails either
 * way: the COMMIT of a failed transaction is refused, see pg_tx). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/conn.h"
#include "db/dialect.h"
#include "util/log.h"
#include "util/util.h"

/* Type OIDs of the integer and boolean columns (pg_type.h is a server header). */
#define OID_BOOL 16
#define OID_INT8 20
#define OID_INT2 21
#define OID_INT4 23
#define OID_TEXT 25

/* Server notices (e.g. "relation already exists, skipping") are not errors. */
static void on_notice(void *arg, const char *message)
{
    (void)arg;
    LOG_DEBUG("postgres: %.*s", (int)strcspn(message, "\n"), message);
}

/* A failed result's SQLSTATE as a db_error, logged unless it is the caller's to judge. */
static int pg_error(PGconn *pg, const PGresult *res)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res ? PQresultErrorMessage(res) : PQerrorMessage(pg);
    int len = (int)strcspn(msg, "\n");
    if (!state)
        state = "";
    if (strncmp(state, "23", 2) == 0) { /* integrity_constraint_violation */
        LOG_DEBUG("postgres constraint: %.*s", len, msg);
        return DB_ECONSTRAINT;
    }
    if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 || strcmp(state, "55P03") == 0) {
        LOG_WARN("postgres busy: %.*s", len, msg);
        return DB_EBUSY; /* serialization failure, deadlock, lock not available */
    }
    if (strcmp(state, "53100") == 0)
        return DB_EFULL; /* disk_full: logged once by the job model */
    if (strcmp(state, "25006") == 0)
        return DB_EREADONLY; /* read_only_sql_transaction (a standby) */
    LOG_ERROR("postgres error %s: %.*s", state[0] ? state : "(connection)", len, msg);
    return DB_EGENERIC;
}

/* 0 for a result that succeeded (and the rows an INSERT/UPDATE/DELETE changed), else the
 * error; res stays the caller's. */
static int result_rc(struct db_conn *c, PGresult *res)
{
    ExecStatusType s = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (s == PGRES_TUPLES_OK || s == PGRES_EMPTY_QUERY)
        return 0;
    if (s == PGRES_COMMAND_OK) {
        c->changes = strtoll(PQcmdTuples(res), NULL, 10);
        return 0;
    }
    return pg_error(c->pg, res);
}

static void stmt_name(const struct db_stmt *st, char name[24])
{
    snprintf(name, 24, "s%d", st->index);
}

static int send_prepared(PGconn *pg, const struct db_stmt *st)
{
    char name[24];
    stmt_name(st, name);
    return PQsendQueryPrepared(pg, name, st->n_params, st->values, NULL, NULL, 0);
}

/* The deferred transaction statements, then st (NULL: none), in one round trip (pipeline
 * mode); st->res gets st's result. Returns 0 or the first error (the server skipped what
 * followed it). */
static int run_pipeline(struct db_conn *c, struct db_stmt *st)
{
    PGconn *pg = c->pg;
    int n = c->n_deferred, ok = PQenterPipelineMode(pg) == 1, rc = 0, query = 0, nulls = 0;
    c->n_deferred = 0;
    c->round_trips++;
    for (int i = 0; ok && i < n; i++)
        ok = send_prepared(pg, c->deferred[i]) == 1;
    ok = ok && (!st || send_prepared(pg, st) == 1) && PQpipelineSync(pg) == 1;
    if (!ok)
        rc = pg_error(pg, NULL);
    /* Each query's results end with a NULL; the sync's result ends the round trip. Two NULLs
     * in a row: nothing more is coming (a lost connection). */
    while (ok) {
        PGresult *res = PQgetResult(pg);
        if (!res) {
            if (++nulls > 1)
                break;
            query++;
            continue;
        }
        nulls = 0;
        ExecStatusType s = PQresultStatus(res);
        if (s == PGRES_PIPELINE_SYNC) {
            PQclear(res);
            break;
        }
        int qrc = s == PGRES_PIPELINE_ABORTED ? DB_EGENERIC : result_rc(c, res);
        rc = rc ? rc : qrc;
        if (st && query == n && !st->res)
            st->res = res;
        else
            PQclear(res);
    }
    if (PQexitPipelineMode(pg) != 1 && rc == 0)
        rc = pg_error(pg, NULL);
    return rc;
}

int pg_exec(struct db_conn *c, const char *sql)
{
    if (c->n_deferred) {
        int rc = run_pipeline(c, NULL);
        if (rc != 0)
            return rc;
    }
    int n;
    char *text = dialect_pg(sql, &n);
    c->round_trips++;
    PGresult *res = PQexec(c->pg, text);
    int rc = result_rc(c, res);
    PQclear(res);
    free(text);
    return rc;
}

int pg_open(struct db_conn *c, const char *url, enum conn_role role)
{
    c->pg = PQconnectdb(url);
    if (!c->pg || PQstatus(c->pg) != CONNECTION_OK) {
        /* libpq's message names the host and the reason, never the password. */
        LOG_ERROR("cannot connect to PostgreSQL: %.*s",
                  (int)strcspn(c->pg ? PQerrorMessage(c->pg) : "out of memory", "\n"),
                  c->pg ? PQerrorMessage(c->pg) : "out of memory");
        pg_close(c);
        return DB_EGENERIC;
    }
    PQsetNoticeProcessor(c->pg, on_notice, NULL);
    /* Readers never write (as SQLite's query_only). The writer starts with
     * synchronous_commit on, the server's default (sync_full = 1). */
    return role == CONN_READER ? pg_exec(c, "SET default_transaction_read_only = on") : 0;
}

void pg_close(struct db_conn *c)
{
    c->n_deferred = 0;
    if (c->pg)
        PQfinish(c->pg);
    c->pg = NULL;
}

/* Translation only: the statement reaches the server at its first db_step, with parameter
 * types (int8 or text) from that first binding, so "?2 IS NULL OR tenant = ?2" has a type
 * for ?2 (the server cannot infer one from IS NULL). A NULL: see server_prepare. */
int pg_prepare(struct db_stmt *st)
{
    st->pg_sql = dialect_pg(st->sql, &st->n_params);
    if (st->n_params <= DB_MAX_PARAMS)
        return 0;
    LOG_ERROR("postgres: a statement with %d parameters (at most %d)", st->n_params, DB_MAX_PARAMS);
    return DB_EGENERIC;
}

/* A parameter first bound to NULL has no type of its own: the server infers it from its use
 * ("members_count = ?1" makes it bigint); where it cannot ("?2 IS NULL OR tenant = ?2"
 * whose first call binds NULL: 42P18 or 42P08), it is text. */
static int server_prepare(struct db_stmt *st, const char *name)
{
    PGconn *pg = st->c->pg;
    int untyped = 0;
    for (int i = 0; i < st->n_params; i++)
        untyped |= st->types[i] == 0;
    /* A failed PREPARE aborts an open transaction: try it inside a savepoint. */
    int in_tx = untyped && PQtransactionStatus(pg) == PQTRANS_INTRANS;
    st->c->round_trips += 1 + 2 * in_tx;
    if (in_tx)
        PQclear(PQexec(pg, "SAVEPOINT caravel_prepare"));
    PGresult *res = PQprepare(pg, name, st->pg_sql, st->n_params, st->types);
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    if (untyped && PQresultStatus(res) != PGRES_COMMAND_OK && state &&
        (strcmp(state, "42P18") == 0 || strcmp(state, "42P08") == 0)) {
        PQclear(res);
        if (in_tx)
            PQclear(PQexec(pg, "ROLLBACK TO SAVEPOINT caravel_prepare"));
        for (int i = 0; i < st->n_params; i++)
            if (!st->types[i])
                st->types[i] = OID_TEXT;
        res = PQprepare(pg, name, st->pg_sql, st->n_params, st->types);
    }
    if (in_tx && PQresultStatus(res) == PGRES_COMMAND_OK)
        PQclear(PQexec(pg, "RELEASE SAVEPOINT caravel_prepare"));
    int rc = result_rc(st->c, res);
    PQclear(res);
    if (rc != 0)
        LOG_ERROR("postgres prepare failed: %s", st->pg_sql);
    st->prepared = rc == 0;
    return rc;
}

void pg_bind(struct db_stmt *st, const struct db_param *p, size_t n)
{
    for (size_t i = 0; i < n && i < (size_t)st->n_params; i++) {
        if (!st->prepared)
            st->types[i] = p[i].is_int ? OID_INT8 : p[i].text ? OID_TEXT : 0;
        if (p[i].is_int) {
            snprintf(st->ints[i], sizeof(st->ints[i]), "%lld", (long long)p[i].i);
            st->values[i] = st->ints[i];
        } else {
            st->values[i] = p[i].text; /* NULL: SQL NULL */
        }
    }
}

/* Prepared on the server (the first use on this connection), or the error. */
static int ensure_prepared(struct db_stmt *st)
{
    char name[24];
    stmt_name(st, name);
    return st->prepared ? 0 : server_prepare(st, name);
}

int pg_step(struct db_stmt *st)
{
    if (!st->executed) {
        struct db_conn *c = st->c;
        st->executed = 1;
        st->row = -1;
        int rc = ensure_prepared(st);
        if (rc != 0)
            return rc;
        if (c->n_deferred) {
            rc = run_pipeline(c, st);
        } else {
            char name[24];
            stmt_name(st, name);
            c->round_trips++;
            st->res = PQexecPrepared(c->pg, name, st->n_params, st->values, NULL, NULL, 0);
            rc = result_rc(c, st->res);
        }
        if (rc != 0) {
            PQclear(st->res);
            st->res = NULL;
            return rc;
        }
    }
    if (!st->res)
        return DB_DONE;
    st->row++;
    return st->row < PQntuples(st->res) ? DB_ROW : DB_DONE;
}

int pg_tx(struct db_stmt *st, int defer)
{
    struct db_conn *c = st->c;
    int rc = ensure_prepared(st);
    if (rc != 0)
        return rc;
    /* A transaction a statement already failed (a job that went on after an error) is told
     * at once, as before: its RELEASE fails and the batch with it. */
    if (defer && c->n_deferred < PG_DEFERRED_MAX && PQtransactionStatus(c->pg) != PQTRANS_INERROR) {
        c->deferred[c->n_deferred++] = st;
        return 0;
    }
    /* A ROLLBACK must run even when what waited would fail (the server would skip it). */
    if (strcmp(st->pg_sql, "ROLLBACK") == 0)
        c->n_deferred = 0;
    rc = pg_step(st);
    /* The server ends a transaction a failed statement aborted with a ROLLBACK, even when
     * asked to COMMIT: nothing of the batch is durable, none of its jobs may be told so. */
    if (rc == DB_DONE && st->res && strncmp(st->pg_sql, "COMMIT", 6) == 0 &&
        strcmp(PQcmdStatus(st->res), "ROLLBACK") == 0) {
        LOG_ERROR("postgres: COMMIT of a failed transaction rolled it back");
        rc = DB_EGENERIC;
    }
    pg_reset(st);
    return rc == DB_ROW ? 0 : rc;
}

void pg_reset(struct db_stmt *st)
{
    PQclear(st->res);
    st->res = NULL;
    st->executed = 0;
    st->row = -1;
    memset(st->values, 0, sizeof(st->values));
}

const char *pg_col(struct db_stmt *st, int col)
{
    if (!st->res || st->row < 0 || st->row >= PQntuples(st->res) || col < 0 ||
        col >= PQnfields(st->res) || PQgetisnull(st->res, st->row, col))
        return NULL;
    return PQgetvalue(st->res, st->row, col);
}

int pg_col_is_int(struct db_stmt *st, int col)
{
    if (!pg_col(st, col))
        return 0;
    Oid t = PQftype(st->res, col);
    return t == OID_INT8 || t == OID_INT4 || t == OID_INT2 || t == OID_BOOL;
}

int pg_lock_schema(struct db_conn *c, int lock)
{
    return pg_exec(c, lock ? "SELECT pg_advisory_lock(" PG_SCHEMA_LOCK_KEY ")"
                           : "SELECT pg_advisory_unlock(" PG_SCHEMA_LOCK_KEY ")");
}

int pg_read_only(struct db_conn *c)
{
    c->round_trips++;
    PGresult *res = PQexec(c->pg, "SELECT pg_is_in_recovery()"
                                  " OR current_setting('transaction_read_only') = 'on'");
    int ro = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
             PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);
    return ro;
}
