#include "test.h"

#include "nostr/hex.h"
#include "nostr/keys.h"
#include "nostr/nip44.h"
#include "nostr/nip59.h"
#include "nostr_vec.h"
#include "util/util.h"

/* Keys of the 59.md and 17.md examples. */
#define NIP59_RECIPIENT "nsec1uyyrnx7cgfp40fcskcr2urqnzekc20fj0er6de0q8qvhx34ahazsvs9p36"
#define NIP17_SENDER "nsec1w8udu59ydjvedgs3yv5qccshcj8k05fh3l60k9x57asjrqdpa00qkmr89m"
#define NIP17_RECEIVER "nsec12ywtkplvyq5t6twdqwwygavp5lm4fhuang89c943nf2z92eez43szvn4dt"

static void keypair(const char *nsec, struct nostr_keypair *kp)
{
    uint8_t sk[32];
    vec_seckey(nsec, sk);
    ASSERT_OK(nostr_keypair_from_seckey(kp, sk));
}

static void load(const char *name, struct nostr_event *ev)
{
    size_t n = 0;
    char *s = vec_read(name, &n);
    nostr_event_init(ev);
    ASSERT_OK(nostr_event_parse(ev, s, n));
    free(s);
}

static void id_hex(const struct nostr_event *ev, char hex[65])
{
    hex_encode(ev->id, 32, hex);
}

TEST(nostr_nip59_example_unwraps)
{
    vec_init();
    struct nostr_keypair me;
    struct nostr_event wrap, rumor, seal;
    char hex[65];
    keypair(NIP59_RECIPIENT, &me);
    load("nip59_wrap.json", &wrap);
    load("nip59_seal.json", &seal);
    nostr_event_init(&rumor);
    ASSERT_OK(nip59_unwrap(&wrap, &me, &rumor));
    id_hex(&rumor, hex);
    ASSERT_STR_EQ(hex, "9dd003c6d3b73b74a85a9ab099469ce251653a7af76f523671ab828acd2a0ef9");
    ASSERT_STR_EQ(rumor.content, "Are you going to the party tonight?");
    ASSERT_EQ(rumor.kind, 1);
    ASSERT_EQ(rumor.created_at, 1691518405);
    ASSERT_MEM_EQ(rumor.pubkey, seal.pubkey, 32);
    /* The seal layer decrypts to exactly nip59_seal.json. */
    uint8_t ck[32];
    char *inner = NULL;
    size_t n = 0;
    ASSERT_OK(nip44_conversation_key(me.seckey, wrap.pubkey, ck));
    ASSERT_OK(nip44_decrypt(ck, wrap.content, wrap.content_len, &inner, &n));
    struct nostr_event s2;
    nostr_event_init(&s2);
    ASSERT_OK(nostr_event_parse(&s2, inner, n));
    ASSERT_MEM_EQ(s2.id, seal.id, 32);
    ASSERT_MEM_EQ(s2.sig, seal.sig, 64);
    ASSERT_OK(nostr_event_verify(&s2));
    free(inner);
    nostr_event_free(&s2);
    nostr_event_free(&seal);
    nostr_event_free(&wrap);
    nostr_event_free(&rumor);
}

TEST(nostr_nip59_nip17_examples_unwrap)
{
    vec_init();
    static const struct {
        const char *file, *key;
    } cases[] = {{"nip17_wrap1.json", NIP17_RECEIVER}, {"nip17_wrap2.json", NIP17_SENDER}};
    struct nostr_keypair sender;
    char first[65] = "";
    keypair(NIP17_SENDER, &sender);
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct nostr_keypair me, other;
        struct nostr_event wrap, rumor;
        char hex[65];
        keypair(cases[i].key, &me);
        keypair(i ? NIP17_RECEIVER : NIP17_SENDER, &other);
        load(cases[i].file, &wrap);
        nostr_event_init(&rumor);
        ASSERT_EQ(nip59_unwrap(&wrap, &other, &rumor), -1); /* not addressed to the other key */
        ASSERT_OK(nip59_unwrap(&wrap, &me, &rumor));
        id_hex(&rumor, hex);
        ASSERT(strncmp(hex, "cf4d6070", 8) == 0 && strcmp(hex + 60, "1749") == 0);
        if (i)
            ASSERT_STR_EQ(hex, first);
        memcpy(first, hex, sizeof(hex));
        ASSERT_EQ(rumor.kind, 14);
        ASSERT_STR_EQ(rumor.content, "Hola, que tal?");
        ASSERT_MEM_EQ(rumor.pubkey, sender.pubkey, 32);
        const char *p = nostr_event_tag_value(&rumor, "p");
        ASSERT_NOT_NULL(p);
        ASSERT(strncmp(p, "918e2da9", 8) == 0 && strcmp(p + 60, "0788") == 0);
        nostr_event_free(&wrap);
        nostr_event_free(&rumor);
    }
}

TEST(nostr_nip59_dm_round_trip)
{
    vec_init();
    struct nostr_keypair alice, bob, eve;
    struct nostr_event wrap, rumor;
    char bob_hex[65];
    const int64_t now = 1700000000;
    ASSERT_OK(nostr_keypair_generate(&alice));
    ASSERT_OK(nostr_keypair_generate(&bob));
    ASSERT_OK(nostr_keypair_generate(&eve));
    hex_encode(bob.pubkey, 32, bob_hex);
    nostr_event_init(&wrap);
    nostr_event_init(&rumor);
    const char *text = "Hi Bob \xf0\x9f\x91\x8b \"quoted\"\n\x01 \\";
    ASSERT_OK(nip17_wrap_dm(&alice, bob.pubkey, text, now, &wrap));
    ASSERT_EQ(wrap.kind, 1059);
    ASSERT_OK(nostr_event_verify(&wrap));
    ASSERT(memcmp(wrap.pubkey, alice.pubkey, 32) != 0); /* one-time key */
    ASSERT_STR_EQ(nostr_event_tag_value(&wrap, "p"), bob_hex);
    ASSERT(wrap.created_at <= now && wrap.created_at >= now - 172800);
    ASSERT_EQ(nip59_unwrap(&wrap, &eve, &rumor), -1);
    ASSERT_EQ(nip59_unwrap(&wrap, &alice, &rumor), -1);
    ASSERT_OK(nip59_unwrap(&wrap, &bob, &rumor));
    ASSERT_STR_EQ(rumor.content, text);
    ASSERT_EQ(rumor.kind, 14);
    ASSERT_EQ(rumor.created_at, now);
    ASSERT_MEM_EQ(rumor.pubkey, alice.pubkey, 32);
    ASSERT_STR_EQ(nostr_event_tag_value(&rumor, "p"), bob_hex);
    /* A tampered wrap is refused before decryption. */
    wrap.created_at++;
    ASSERT_EQ(nip59_unwrap(&wrap, &bob, &rumor), -1);
    nostr_event_free(&wrap);
    nostr_event_free(&rumor);
}

TEST(nostr_nip59_wrap_refuses_foreign_rumor)
{
    vec_init();
    struct nostr_keypair alice, bob;
    struct nostr_event rumor, wrap;
    ASSERT_OK(nostr_keypair_generate(&alice));
    ASSERT_OK(nostr_keypair_generate(&bob));
    nostr_event_init(&rumor);
    nostr_event_init(&wrap);
    memcpy(rumor.pubkey, bob.pubkey, 32);
    rumor.kind = 14;
    ASSERT_EQ(nip59_wrap(&rumor, &alice, bob.pubkey, 1700000000, &wrap), -1);
    /* Too big for one NIP-44 message once sealed. */
    memcpy(rumor.pubkey, alice.pubkey, 32);
    char *big = xmalloc(60000);
    memset(big, 'x', 60000);
    nostr_event_set_content(&rumor, big, 60000);
    ASSERT_EQ(nip59_wrap(&rumor, &alice, bob.pubkey, 1700000000, &wrap), -1);
    free(big);
    nostr_event_free(&rumor);
    nostr_event_free(&wrap);
}

/* Hand-built layers: Mallory seals a rumor claiming to be from Alice. The signatures are all
 * valid, only rumor.pubkey != seal.pubkey gives it away. */
static void build_wrap(const struct nostr_keypair *sealer, const char *rumor_json, int seal_kind,
                       const uint8_t to[32], struct nostr_event *wrap)
{
    struct nostr_keypair eph;
    struct nostr_event seal;
    uint8_t ck[32];
    char *p = NULL, *seal_json;
    nostr_event_init(&seal);
    seal.kind = seal_kind;
    seal.created_at = 1700000000;
    ASSERT_OK(nip44_conversation_key(sealer->seckey, to, ck));
    ASSERT_OK(nip44_encrypt(ck, rumor_json, strlen(rumor_json), NULL, &p));
    nostr_event_set_content(&seal, p, strlen(p));
    free(p);
    ASSERT_OK(nostr_event_sign(&seal, sealer));
    seal_json = nostr_event_to_json(&seal, 1);
    ASSERT_OK(nostr_keypair_generate(&eph));
    nostr_event_init(wrap);
    wrap->kind = 1059;
    wrap->created_at = 1700000000;
    ASSERT_OK(nip44_conversation_key(eph.seckey, to, ck));
    ASSERT_OK(nip44_encrypt(ck, seal_json, strlen(seal_json), NULL, &p));
    nostr_event_set_content(wrap, p, strlen(p));
    ASSERT_OK(nostr_event_sign(wrap, &eph));
    free(p);
    free(seal_json);
    nostr_event_free(&seal);
}

static char *rumor_json_from(const struct nostr_keypair *author, const char *text)
{
    struct nostr_event r;
    nostr_event_init(&r);
    memcpy(r.pubkey, author->pubkey, 32);
    r.kind = 14;
    r.created_at = 1700000000;
    nostr_event_set_content(&r, text, strlen(text));
    ASSERT_OK(nostr_event_compute_id(&r, r.id));
    char *json = nostr_event_to_json(&r, 0);
    nostr_event_free(&r);
    return json;
}

TEST(nostr_nip59_unwrap_checks)
{
    vec_init();
    struct nostr_keypair alice, bob, mallory;
    struct nostr_event wrap, rumor;
    ASSERT_OK(nostr_keypair_generate(&alice));
    ASSERT_OK(nostr_keypair_generate(&bob));
    ASSERT_OK(nostr_keypair_generate(&mallory));
    nostr_event_init(&rumor);
    char *forged = rumor_json_from(&alice, "send me your keys");
    char *honest = rumor_json_from(&mallory, "hi");

    build_wrap(&mallory, forged, 13, bob.pubkey, &wrap); /* impersonation */
    ASSERT_EQ(nip59_unwrap(&wrap, &bob, &rumor), -1);
    nostr_event_free(&wrap);

    build_wrap(&mallory, honest, 13, bob.pubkey, &wrap); /* control: honest seal opens */
    ASSERT_OK(nip59_unwrap(&wrap, &bob, &rumor));
    ASSERT_STR_EQ(rumor.content, "hi");
    wrap.kind = 1;
    ASSERT_EQ(nip59_unwrap(&wrap, &bob, &rumor), -1); /* not a gift wrap */
    nostr_event_free(&wrap);

    build_wrap(&mallory, honest, 1, bob.pubkey, &wrap); /* inner layer is not a seal */
    ASSERT_EQ(nip59_unwrap(&wrap, &bob, &rumor), -1);
    nostr_event_free(&wrap);

    honest[strlen(honest) - 3] ^= 1; /* rumor content no longer matches its id */
    build_wrap(&mallory, honest, 13, bob.pubkey, &wrap);
    ASSERT_EQ(nip59_unwrap(&wrap, &bob, &rumor), -1);
    nostr_event_free(&wrap);
    free(forged);
    free(honest);
    nostr_event_free(&rumor);
}
