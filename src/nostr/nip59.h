/* NIP-59 gift wrap and NIP-17 private direct messages. Pure, thread-safe. */
#ifndef CARAVEL_NOSTR_NIP59_H
#define CARAVEL_NOSTR_NIP59_H

#include <stdint.h>

#include "nostr/event.h"

/* Wraps an unsigned rumor (its pubkey must be the sender's; its id is computed here) into a
 * kind 13 seal signed by sender and NIP-44 encrypted to recipient, then a kind 1059 wrap
 * from a fresh one-time key with a ["p", recipient] tag. Both created_at values are `now`
 * minus a random 0..2 days. wrap must be initialised; it is overwritten. rumor, sender and
 * recipient are borrowed. Returns 0 or -1 (rumor pubkey != sender, invalid recipient key,
 * or a seal JSON above NIP-44's 65535 bytes, i.e. rumor JSON beyond about 48 KiB). */
int nip59_wrap(const struct nostr_event *rumor, const struct nostr_keypair *sender,
               const uint8_t recipient[32], int64_t now, struct nostr_event *wrap);
/* NIP-17: a kind 14 rumor (sender pubkey, ["p", recipient], content = text, created_at =
 * now) wrapped as above. */
int nip17_wrap_dm(const struct nostr_keypair *sender, const uint8_t recipient[32], const char *text,
                  int64_t now, struct nostr_event *wrap);
/* Unwraps a kind 1059 addressed to me: checks the wrap and seal signatures and that the
 * rumor's pubkey equals the seal's, that the seal is kind 13 and that the rumor id is the
 * hash of its fields (seal tags are not required to be empty). rumor must be initialised;
 * on success it is overwritten with the rumor (sig all zero). Returns 0 or -1. */
int nip59_unwrap(const struct nostr_event *wrap, const struct nostr_keypair *me,
                 struct nostr_event *rumor);

#endif
