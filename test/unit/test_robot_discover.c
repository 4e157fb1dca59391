/* Pure part of the robot's DM relay discovery: which tags count as relays. */
#include <stdlib.h>
#include <string.h>

#include "nostr/event.h"
#include "robot/discover.h"
#include "test.h"

static void add3(struct nostr_event *ev, const char *a, const char *b, const char *c)
{
    const char *v[3] = {a, b, c};
    nostr_event_add_tag(ev, c ? 3 : 2, v);
}

TEST(discover_relay_tags_10050)
{
    struct nostr_event ev;
    char *out[DISCOVER_MAX_RELAYS];
    nostr_event_init(&ev);
    add3(&ev, "relay", "wss://a.example", NULL);
    add3(&ev, "relay", "wss://a.example", NULL); /* duplicate */
    add3(&ev, "relay", "https://not-ws.example", NULL);
    add3(&ev, "r", "wss://r-tag.example", NULL); /* other tag name */
    add3(&ev, "relay", "ws://127.0.0.1:7777", NULL);
    size_t n = discover_tag_urls(&ev, "relay", out, DISCOVER_MAX_RELAYS);
    ASSERT_EQ(n, 2);
    ASSERT_STR_EQ(out[0], "wss://a.example");
    ASSERT_STR_EQ(out[1], "ws://127.0.0.1:7777");
    for (size_t i = 0; i < n; i++)
        free(out[i]);
    nostr_event_free(&ev);
}

TEST(discover_write_relays_10002_and_cap)
{
    struct nostr_event ev;
    char *out[3];
    nostr_event_init(&ev);
    add3(&ev, "r", "wss://read.example", "read");
    add3(&ev, "r", "wss://both.example", NULL);
    add3(&ev, "r", "wss://write.example", "write");
    add3(&ev, "r", "wss://w2.example", NULL);
    add3(&ev, "r", "wss://w3.example", NULL);
    size_t n = discover_tag_urls(&ev, "r", out, 3);
    ASSERT_EQ(n, 3);
    ASSERT_STR_EQ(out[0], "wss://both.example");
    ASSERT_STR_EQ(out[1], "wss://write.example");
    ASSERT_STR_EQ(out[2], "wss://w2.example");
    for (size_t i = 0; i < n; i++)
        free(out[i]);
    nostr_event_free(&ev);
}
