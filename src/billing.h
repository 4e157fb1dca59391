/* Billing jobs (spec 8). Loop thread only. NULL billing = no-op. */
#ifndef CARAVEL_BILLING_H
#define CARAVEL_BILLING_H

struct app;
struct billing;

int billing_start(struct billing **out, struct app *app);
/* The tenant set an NWC URL: try to collect its pending invoices now. */
void billing_collect_tenant(struct billing *billing, const char *tenant_pubkey);
void billing_stop(struct billing *billing, void (*cb)(void *arg), void *arg);

#endif
