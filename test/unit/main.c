/* Test runner: forks one child per registered test (a crash or hang fails only that test),
 * optional substring filters on the command line, last line "N passed, N failed". */
#include "test.h"

#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_TESTS 2048

struct test_entry {
    const char *name;
    test_fn *fn;
    int timeout_s;
};

static struct test_entry tests[MAX_TESTS];
static int n_tests;

void test_register(const char *name, test_fn *fn, int timeout_s)
{
    if (n_tests == MAX_TESTS)
        abort();
    tests[n_tests++] = (struct test_entry){name, fn, timeout_s};
}

char *test_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)n + 1);
    if (p && fread(p, 1, (size_t)n, f) != (size_t)n) {
        free(p);
        p = NULL;
    }
    fclose(f);
    if (p) {
        p[n] = '\0';
        if (len)
            *len = (size_t)n;
    }
    return p;
}

const char *test_vectors_dir(void)
{
    const char *d = getenv("CARAVEL_VECTORS");
    return d ? d : "test/vectors";
}

/* Each test runs with its own scratch directory, made by the runner before the fork and
 * removed after the child is gone (also when it crashed or timed out): test_tmpdir() makes
 * subdirectories of it, so no test has to clean up. Under $TMPDIR when that is short enough
 * for the 64-byte buffers of the tests (test/run.sh points it into its own folder), else /tmp. */
static char scratch[64];

static int scratch_make(void)
{
    const char *t = getenv("TMPDIR");
    if (!t || !*t || strlen(t) > 32)
        t = "/tmp";
    int n = snprintf(scratch, sizeof scratch, "%s/caravel-test-XXXXXX", t);
    return n > 0 && (size_t)n < sizeof scratch && mkdtemp(scratch) ? 0 : -1;
}

static int unlink_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void scratch_remove(void)
{
    if (nftw(scratch, unlink_cb, 16, FTW_DEPTH | FTW_PHYS) != 0)
        fprintf(stderr, "  could not remove %s: %s\n", scratch, strerror(errno));
}

void test_tmpdir(char *out, size_t cap)
{
    static unsigned n;
    if (!scratch[0] || (size_t)snprintf(out, cap, "%s/%u-XXXXXX", scratch, n++) >= cap ||
        !mkdtemp(out))
        abort();
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct test_entry *)a)->name, ((const struct test_entry *)b)->name);
}

static int selected(const char *name, int argc, char **argv)
{
    if (argc < 2)
        return 1;
    for (int i = 1; i < argc; i++)
        if (strstr(name, argv[i]))
            return 1;
    return 0;
}

static int run_one(const struct test_entry *t)
{
    if (scratch_make() != 0) {
        fprintf(stderr, "  no scratch directory: %s\n", strerror(errno));
        return 0;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        alarm((unsigned)t->timeout_s);
        t->fn();
        fflush(NULL);
        _exit(0);
    }
    int st = 0;
    int waited = pid > 0 && waitpid(pid, &st, 0) == pid;
    scratch_remove();
    scratch[0] = '\0';
    if (!waited)
        return 0;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return 1;
    if (WIFSIGNALED(st))
        fprintf(stderr, "  killed by signal %d%s\n", WTERMSIG(st),
                WTERMSIG(st) == SIGALRM ? " (timeout)" : "");
    return 0;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    qsort(tests, (size_t)n_tests, sizeof(tests[0]), by_name);
    int passed = 0, failed = 0;
    for (int i = 0; i < n_tests; i++) {
        if (!selected(tests[i].name, argc, argv))
            continue;
        int ok = run_one(&tests[i]);
        printf("%s %s\n", ok ? "ok  " : "FAIL", tests[i].name);
        ok ? passed++ : failed++;
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
