/* jsonnum — exact printing of doubles into JSON. */
#include "core/jsonnum.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int json_number_text(char *buf, size_t size, double v, int json)
{
    if (!isfinite(v))
        return snprintf(buf, size, "%s", json ? "null" : isnan(v) ? "nan" : v > 0 ? "inf" : "-inf");
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(buf, size, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    return n;
}

cJSON *json_number(double v)
{
    if (!isfinite(v))
        return cJSON_CreateNull();
    char buf[40];
    json_number_text(buf, sizeof buf, v, 1);
    cJSON *n = cJSON_CreateRaw(buf);
    if (n) {
        n->valuedouble = v;
        n->valueint = v >= 2147483647.0 ? 2147483647 : v <= -2147483648.0 ? -2147483647 - 1
                                                                           : (int)v;
    }
    return n;
}

int json_is_number(const cJSON *item)
{
    return cJSON_IsNumber(item) || (cJSON_IsRaw(item) && item->valuestring &&
                                    item->valuestring[0] != 'n');
}

int json_make_exact(cJSON *item)
{
    for (; item; item = item->next) {
        if (cJSON_IsNumber(item)) {
            char buf[40];
            json_number_text(buf, sizeof buf, item->valuedouble, 1);
            size_t n = strlen(buf) + 1;
            char *s = cJSON_malloc(n);
            if (!s)
                return -1;
            memcpy(s, buf, n);
            /* A raw item keeps its number (valuedouble) for readers using json_is_number. */
            item->type = (item->type & ~0xFF) | cJSON_Raw;
            item->valuestring = s;
        } else if (item->child && json_make_exact(item->child) != 0) {
            return -1;
        }
    }
    return 0;
}

char *json_print_exact(const cJSON *item)
{
    if (!item)
        return NULL;
    cJSON *copy = cJSON_Duplicate(item, 1);
    if (!copy)
        return NULL;
    /* Only the copy's own subtree: its `next` is null after cJSON_Duplicate. */
    char *text = json_make_exact(copy) == 0 ? cJSON_PrintUnformatted(copy) : NULL;
    cJSON_Delete(copy);
    return text;
}
