/* PostgreSQL behind the statement API (db/conn.h): synchronous libpq on the pool thread that
 * holds the connection, like SQLite. Each statement is translated (db/dialect.h) and
 * prepared once per connection as "s<index>"; db_step executes it on its first call with
 * the bound parameters as text and then walks the result's rows. */
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

int pg_exec(struct db_conn *c, const char *sql)
{
    int n;
    char *text = dialect_pg(sql, &n);
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

int pg_step(struct db_stmt *st)
{
    if (!st->executed) {
        char name[24];
        snprintf(name, sizeof(name), "s%d", st->index);
        st->executed = 1;
        st->row = -1;
        int prc = st->prepared ? 0 : server_prepare(st, name);
        if (prc != 0)
            return prc;
        st->res = PQexecPrepared(st->c->pg, name, st->n_params, st->values, NULL, NULL, 0);
        int rc = result_rc(st->c, st->res);
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
    PGresult *res = PQexec(c->pg, "SELECT pg_is_in_recovery()"
                                  " OR current_setting('transaction_read_only') = 'on'");
    int ro = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
             PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);
    return ro;
}
