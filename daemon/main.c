/* anneald — entry point: dispatches the offline commands and starts the service. */
#include <stdio.h>
#include <string.h>

#include "daemon/version.h"

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        printf("anneald %s\n", ANNEALD_VERSION);
        return 0;
    }
    fprintf(stderr, "anneald: the service is not built yet\n");
    return 2;
}
