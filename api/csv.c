/* csv — checking an uploaded data set. */
#include "api/csv.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One cell: [b, e) trimmed of spaces (and of quotes for names). */
static void trim(const char **b, const char **e)
{
    while (*b < *e && (**b == ' ' || **b == '\t'))
        (*b)++;
    while (*e > *b && ((*e)[-1] == ' ' || (*e)[-1] == '\t' || (*e)[-1] == '\r'))
        (*e)--;
}

int csv_check(const char *text, size_t len, int64_t *rows, cJSON **columns, an_err *err)
{
    *rows = 0;
    *columns = NULL;
    if (len == 0 || !text)
        return an_fail(err, "csv", "a CSV text with a header row was expected, got an empty body");
    const char *p = text, *end = text + len;
    if (len >= 3 && (unsigned char)p[0] == 0xEF && (unsigned char)p[1] == 0xBB &&
        (unsigned char)p[2] == 0xBF)
        p += 3; /* UTF-8 byte order mark */
    cJSON *cols = cJSON_CreateArray();
    int ncols = 0;
    int64_t row = 0;
    char field[64];
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        const char *b = p, *e = le;
        trim(&b, &e);
        if (b == e) { /* empty line: allowed only at the end */
            const char *q = le;
            while (q < end && (*q == '\n' || *q == '\r' || *q == ' ' || *q == '\t'))
                q++;
            if (q < end) {
                snprintf(field, sizeof field, "csv[%lld]", (long long)row);
                cJSON_Delete(cols);
                return an_fail(err, field, "row %lld is empty; every row needs %d values",
                               (long long)row, ncols);
            }
            break;
        }
        int col = 0;
        const char *c = p;
        for (;;) {
            const char *comma = memchr(c, ',', (size_t)(le - c));
            const char *ce = comma ? comma : le;
            const char *cb = c, *cc = ce;
            trim(&cb, &cc);
            if (row == 0) { /* the header */
                if (cc - cb >= 2 && *cb == '"' && cc[-1] == '"') {
                    cb++;
                    cc--;
                }
                if (cb == cc) {
                    snprintf(field, sizeof field, "csv[0][%d]", col + 1);
                    cJSON_Delete(cols);
                    return an_fail(err, field, "header column %d has no name", col + 1);
                }
                if (col >= CSV_MAX_COLUMNS) {
                    cJSON_Delete(cols);
                    return an_fail(err, "csv[0]", "at most %d columns are accepted", CSV_MAX_COLUMNS);
                }
                char name[256];
                size_t nl2 = (size_t)(cc - cb) < sizeof name - 1 ? (size_t)(cc - cb) : sizeof name - 1;
                memcpy(name, cb, nl2);
                name[nl2] = '\0';
                for (cJSON *x = cols->child; x; x = x->next)
                    if (strcmp(x->valuestring, name) == 0) {
                        snprintf(field, sizeof field, "csv[0][%d]", col + 1);
                        cJSON_Delete(cols);
                        return an_fail(err, field, "column name '%s' appears twice in the header", name);
                    }
                cJSON_AddItemToArray(cols, cJSON_CreateString(name));
            } else {
                const char *name = col < ncols ? cJSON_GetArrayItem(cols, col)->valuestring : "?";
                if (col >= ncols) {
                    snprintf(field, sizeof field, "csv[%lld]", (long long)row);
                    cJSON_Delete(cols);
                    return an_fail(err, field, "row %lld has more than the header's %d columns",
                                   (long long)row, ncols);
                }
                char num[128];
                size_t n = (size_t)(cc - cb);
                char *ep = NULL;
                double v = NAN;
                if (n > 0 && n < sizeof num) {
                    memcpy(num, cb, n);
                    num[n] = '\0';
                    v = strtod(num, &ep);
                }
                if (n == 0 || n >= sizeof num || *ep || !isfinite(v)) {
                    snprintf(field, sizeof field, "csv[%lld][%d]", (long long)row, col + 1);
                    char got[40];
                    size_t gl = n < sizeof got - 1 ? n : sizeof got - 1;
                    memcpy(got, cb, gl);
                    got[gl] = '\0';
                    cJSON_Delete(cols);
                    return an_fail(err, field,
                                   "row %lld, column %d (%s): a finite number was expected, got '%s'",
                                   (long long)row, col + 1, name, got);
                }
            }
            col++;
            if (!comma)
                break;
            c = comma + 1;
        }
        if (row == 0) {
            ncols = col;
        } else if (col != ncols) {
            snprintf(field, sizeof field, "csv[%lld]", (long long)row);
            cJSON_Delete(cols);
            return an_fail(err, field, "row %lld has %d values; the header has %d columns",
                           (long long)row, col, ncols);
        }
        row++;
        p = nl ? nl + 1 : end;
    }
    if (row < 2) {
        cJSON_Delete(cols);
        return an_fail(err, "csv", "a header row and at least one data row were expected, got %s",
                       row == 0 ? "nothing" : "only the header");
    }
    *rows = row - 1;
    *columns = cols;
    return 0;
}
