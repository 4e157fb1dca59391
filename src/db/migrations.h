/* The schema migrations embedded at build time from migrations/NNNN_*.sql (ordered by name). */
#ifndef CARAVEL_DB_MIGRATIONS_H
#define CARAVEL_DB_MIGRATIONS_H

#include <stddef.h>

struct migration {
    const char *name; /* "0001_init" */
    const char *sql;
};

extern const struct migration migrations[];
extern const size_t n_migrations;

#endif
