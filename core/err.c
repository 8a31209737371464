/* err — filling an_err and building JSON paths. */
#include "core/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void fill(an_err *e, const char *field, const char *fmt, va_list ap)
{
    if (!e)
        return;
    snprintf(e->field, sizeof e->field, "%s", field ? field : "");
    vsnprintf(e->message, sizeof e->message, fmt, ap);
}

int an_fail(an_err *e, const char *field, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fill(e, field, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

int an_failc(an_err *e, int code, const char *field, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fill(e, field, fmt, ap);
    va_end(ap);
    return code;
}

void an_err_clear(an_err *e)
{
    if (e)
        e->field[0] = e->message[0] = '\0';
}

const char *an_path(char *buf, unsigned long size, const char *prefix, const char *key)
{
    if (prefix && prefix[0])
        snprintf(buf, size, "%s.%s", prefix, key);
    else
        snprintf(buf, size, "%s", key);
    return buf;
}

const char *an_path_index(char *buf, unsigned long size, const char *prefix, int index)
{
    snprintf(buf, size, "%s[%d]", prefix ? prefix : "", index);
    return buf;
}
