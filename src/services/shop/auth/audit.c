/* The audit trail: rows in audit_log written in the same transaction as what they record. */
#include "audit.h"

#include "context.h"
#include "kit/kit.h"
#include "core/banned.h"

int auth_audit(struct kit_db *db, const char *tenant, const char *actor, const char *action,
               const char *target, const char *detail, struct ag_err *err)
{
    static const char sql[] = "INSERT INTO audit_log (id, tenant, at, actor, action, target, "
                              "detail) VALUES ($1, $2, $3, $4, $5, $6, $7)";
    char id[KIT_ID_LEN + 1];
    kit_id_new(id);
    int rc =
        kit_db_exec(db, sql,
                    KIT_DB_PARAMS(AUTH_DB_STR(id), KIT_DB_TEXT(tenant), KIT_DB_INT(kit_now_ms()),
                                  KIT_DB_TEXT(actor), KIT_DB_TEXT(action), KIT_DB_TEXT(target),
                                  KIT_DB_TEXT(detail)),
                    err);
    return rc < 0 ? rc : 0;
}
