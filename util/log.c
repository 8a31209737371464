/* log — the service's log lines, and the free space of a file's file system. */
#include "util/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>

static int log_level = LOG_INFO;

void util_log_set_level(int level)
{
    log_level = level;
}

int util_log_level(void)
{
    return log_level;
}

void util_log(int level, const char *fmt, ...)
{
    if (level > log_level)
        return;
    static const char *names[] = {"error", "warn", "info", "debug"};
    char ts[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    /* One line each, whatever a message carries (an error quoting a client's input): control
     * characters become spaces, so no text can start a line that looks like the daemon's. */
    char msg[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    for (char *p = msg; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
    /* Workers log too: one write of a whole line under stderr's lock, so lines of different
     * threads never interleave. */
    flockfile(stderr);
    fprintf(stderr, "%s anneald %s: %s%s\n", ts, names[level & 3], msg,
            (size_t)n >= sizeof msg ? " [cut]" : "");
    funlockfile(stderr);
}

int util_free_disk(const char *path, uint64_t *avail)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    struct statvfs sv;
    if (statvfs(dir, &sv) != 0)
        return -errno;
    *avail = (uint64_t)sv.f_bavail * (uint64_t)sv.f_frsize;
    return 0;
}
