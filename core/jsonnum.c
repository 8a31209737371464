/* jsonnum — exact printing of doubles into JSON. */
#include "core/jsonnum.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

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
