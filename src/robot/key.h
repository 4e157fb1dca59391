/* The robot's identity: ROBOT_SECRET, or a key generated on first start and kept in the
 * database (table `setting`, row robot_secret). Start-up only, on the loop thread, before
 * anything else is active: it runs the loop until its one database job is done. */
#ifndef CARAVEL_ROBOT_KEY_H
#define CARAVEL_ROBOT_KEY_H

#include "core/app.h"

/* Sets app->robot_key. Logs the robot's npub (never the key). Returns 0, or -1 logged. */
int robot_key_load(struct app *app);

#endif
