/* Test runner: forks one child per registered test (a crash or hang fails only that test),
 * optional substring filters on the command line, last line "N passed, N failed". */
#include "test.h"

#include <signal.h>
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

void test_tmpdir(char *out, size_t cap)
{
    snprintf(out, cap, "/tmp/caravel-test-XXXXXX");
    if (!mkdtemp(out))
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
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        alarm((unsigned)t->timeout_s);
        t->fn();
        fflush(NULL);
        _exit(0);
    }
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) < 0)
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
