/* The robot (PRODUCT.md §6): publishes its profile and relay lists, and delivers the DM outbox
 * (table `message`) as NIP-17 gift wraps. Loop thread only, except robot_queue_dm_sql. */
#ifndef CARAVEL_ROBOT_H
#define CARAVEL_ROBOT_H

#include <stdint.h>

#include "db/db.h"

struct app;
struct robot;

int robot_start(struct robot **out, struct app *app);
/* New rows were queued: deliver soon. NULL robot = no-op. */
void robot_kick(struct robot *robot);
void robot_stop(struct robot *robot, void (*cb)(void *arg), void *arg);

/* Pool thread, inside the caller's write transaction: queue a DM to recipient (64 hex).
 * Returns 0 or a db_error code. */
int robot_queue_dm_sql(struct db_conn *conn, const char *recipient, const char *text, int64_t now);

#endif
