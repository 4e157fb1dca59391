#include "core/plans.h"

#include <string.h>

const struct plan plans[] = {
    {"free", "Free", 0, 10, 0, 0, 3, 1},
    {"basic", "Basic", 10000, 100, 1, 1, 10, 5},
    {"growth", "Growth", 50000, -1, 1, 1, 50, 20},
};
const size_t n_plans = sizeof(plans) / sizeof(plans[0]);

const struct plan *plan_find(const char *id)
{
    for (size_t i = 0; id && i < n_plans; i++)
        if (strcmp(plans[i].id, id) == 0)
            return &plans[i];
    return NULL;
}
