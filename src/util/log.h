/* Logging: one line per event to stderr, "2026-11-26T19:40:00.123Z INFO  file.c:42 message".
 * Level from LOG_LEVEL (debug, info, warn, error). Never pass secrets, Authorization headers
 * or whole payloads. Thread-safe (one fprintf per line); callable from pool threads. */
#ifndef CARAVEL_LOG_H
#define CARAVEL_LOG_H

enum log_level { LOG_LEVEL_DEBUG, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR };

extern enum log_level log_min_level;

/* Parses "debug|info|warn|error"; returns 0, or -1 for an unknown name (level unchanged). */
int log_set_level(const char *name);

__attribute__((format(printf, 4, 5), cold)) void log_write(enum log_level level, const char *file,
                                                           int line, const char *fmt, ...);

#define LOG_AT_(lvl, ...)                                                                          \
    do {                                                                                           \
        if ((lvl) >= log_min_level)                                                                \
            log_write((lvl), __FILE__, __LINE__, __VA_ARGS__);                                     \
    } while (0)
#define LOG_DEBUG(...) LOG_AT_(LOG_LEVEL_DEBUG, __VA_ARGS__)
#define LOG_INFO(...) LOG_AT_(LOG_LEVEL_INFO, __VA_ARGS__)
#define LOG_WARN(...) LOG_AT_(LOG_LEVEL_WARN, __VA_ARGS__)
#define LOG_ERROR(...) LOG_AT_(LOG_LEVEL_ERROR, __VA_ARGS__)

#endif
