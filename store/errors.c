/* errors.c — SQLite's result codes as the store's errno values (store.h lists them). */
#include "store/store.h"

#include <errno.h>

#include "store/internal.h"

int st_fail(store_t *s, int rc, const char *what, an_err *err)
{
    int code;
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED: code = -EBUSY; break;
    case SQLITE_FULL: code = -ENOSPC; break;
    case SQLITE_READONLY: code = -EROFS; break;
    case SQLITE_NOMEM: code = -ENOMEM; break;
    case SQLITE_TOOBIG: code = -E2BIG; break;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB: code = -EPROTO; break;
    case SQLITE_CANTOPEN: code = -ENOENT; break;
    case SQLITE_PERM:
    case SQLITE_AUTH: code = -EACCES; break;
    case SQLITE_CONSTRAINT: code = -EEXIST; break;
    case SQLITE_MISUSE:
    case SQLITE_RANGE: code = -EINVAL; break;
    default: code = -EIO; break;
    }
    const char *msg = (s && s->db) ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc);
    an_failc(err, code, NULL, "%s: %s (SQLite code %d)", what, msg, rc);
    return code;
}

const char *store_strerror(int rc)
{
    switch (rc) {
    case 0: return "OK";
    case STORE_ESTATE: return "STORE_ESTATE";
    case STORE_EINUSE: return "STORE_EINUSE";
    case -ENOENT: return "ENOENT";
    case -EINVAL: return "EINVAL";
    case -EEXIST: return "EEXIST";
    case -EBUSY: return "EBUSY";
    case -ENOSPC: return "ENOSPC";
    case -EROFS: return "EROFS";
    case -ENOMEM: return "ENOMEM";
    case -E2BIG: return "E2BIG";
    case -EPROTO: return "EPROTO";
    case -EACCES: return "EACCES";
    case -EIO: return "EIO";
    case -ESTALE: return "ESTALE";
    default: return "unknown";
    }
}
