/* assets — lookup in the table that tools/mkassets.sh generates. */
#include "core/assets.h"

#include <string.h>

struct asset_entry {
    const char *name;          /* path in the source tree */
    const unsigned char *data; /* the bytes, followed by a NUL */
    size_t len;                /* bytes, without the NUL */
};

extern const struct asset_entry anneald_assets[]; /* ends with an all-zero entry */

const unsigned char *assets_get(const char *name, size_t *len)
{
    for (const struct asset_entry *a = anneald_assets; a->name; a++) {
        if (strcmp(a->name, name) == 0) {
            if (len)
                *len = a->len;
            return a->data;
        }
    }
    return NULL;
}

const char *assets_name(size_t i)
{
    for (size_t k = 0; anneald_assets[k].name; k++)
        if (k == i)
            return anneald_assets[k].name;
    return NULL;
}
