/* SPDX-License-Identifier: MIT */
/*
 * The public header's numbers are the wire's. include/pagemap.h is installed
 * alone (not uapi/pagemap_proto.h), so it spells its values as literals; the
 * wire header defines them, and the broker knows only those. libpagemap
 * passes these values between its callers and the broker unchanged (advice
 * and its flags out, kinds, states, APPLIED statuses and run bits in), so
 * each must equal its wire value: checked here, at build time.
 *
 * Values the library translates (PM_FD_* to PM_TARGET_*, PM_MIGRATE_* to
 * PM_MIG_*, revoke events) need no equality; the batch limits only need to
 * fit one request.
 */
#include <assert.h>
#include <stdint.h>

#include "pagemap.h"
#include "pagemap_proto.h"

/* As numbers: the two sides' enums are distinct types on purpose. */
#define SAME(pub, wire) \
	static_assert((uintmax_t)(pub) == (uintmax_t)(wire), #pub " is the wire's " #wire)

/* pagemap_info.kind, .state: pm_info's fields, copied (pm_info_from_wire). */
SAME(PAGEMAP_KIND_HOST_NUMA, PM_KIND_HOST_NUMA);
SAME(PAGEMAP_KIND_PCI_BAR, PM_KIND_PCI_BAR);
SAME(PAGEMAP_KIND_RDMA_REMOTE, PM_KIND_RDMA_REMOTE);
SAME(PAGEMAP_KIND_GPU, PM_KIND_GPU);
SAME(PAGEMAP_KIND_EMULATED, PM_KIND_EMULATED);
SAME(PAGEMAP_KIND_P2PMEM, PM_KIND_P2PMEM);
SAME(PM_FILE_BOUNCE, PM_IO_BOUNCE);
SAME(PM_POOL_AVAILABLE, PM_POOLS_AVAILABLE);
SAME(PM_POOL_LIVE, PM_POOLS_LIVE);
SAME(PM_POOL_REVOKED, PM_POOLS_REVOKED);
SAME(PM_POOL_GONE, PM_POOLS_GONE);
static_assert(sizeof(((struct pm_pool_info *)0)->device) == PM_NAME_MAX &&
		      sizeof(((struct pm_pool_info *)0)->region) == PM_REGION_MAX &&
		      sizeof(((struct pm_pool_info *)0)->path) ==
			      sizeof(((struct pm_pools_entry *)0)->path),
	      "pm_pool_info's names hold the wire's");
static_assert(sizeof(((struct pm_io_result *)0)->reason) ==
		      sizeof(((struct pm_file_io_reply *)0)->reason),
	      "pm_io_result.reason holds the wire's");
SAME(PAGEMAP_STATE_ACTIVE, PM_STATE_ACTIVE);
SAME(PAGEMAP_STATE_LINGERING, PM_STATE_LINGERING);
SAME(PAGEMAP_STATE_REVOKED, PM_STATE_REVOKED);
SAME(sizeof(((struct pagemap_info *)0)->device), PM_NAME_MAX);
SAME(sizeof(((struct pagemap_info *)0)->region), PM_REGION_MAX);

/* pm_madvise's advice argument: pm_advise.advice as given. */
SAME(PM_ADV_PREFERRED_LOCATION, PM_ADVICE_PREFERRED_LOCATION);
SAME(PM_ADV_UNSET_PREFERRED_LOCATION, PM_ADVICE_UNSET_PREFERRED_LOCATION);
SAME(PM_ADV_ACCESSED_BY, PM_ADVICE_ACCESSED_BY);
SAME(PM_ADV_UNSET_ACCESSED_BY, PM_ADVICE_UNSET_ACCESSED_BY);
SAME(PM_ADV_READ_MOSTLY, PM_ADVICE_READ_MOSTLY);
SAME(PM_ADV_UNSET_READ_MOSTLY, PM_ADVICE_UNSET_READ_MOSTLY);
SAME(PM_ADV_FLAG_FALLBACK, PM_ADVICE_FLAG_FALLBACK);
SAME(PM_ADV_FLAG_ONLY_SYSTEM, PM_ADVICE_FLAG_ONLY_SYSTEM);
/* pm_madvise's return value: the ADVISE reply's status. */
SAME(PM_ADV_APPLIED, PM_ADVICE_APPLIED);
SAME(PM_ADV_APPLIED_LOCAL, PM_ADVICE_APPLIED_LOCAL);
SAME(PM_ADV_APPLIED_SYSTEM, PM_ADVICE_APPLIED_SYSTEM);

/* pm_query_range: pm_range's fields are pm_run's, copied. */
SAME(PM_PAGEMAP_SYSTEM, PM_RUN_REQUESTED_SYSTEM);
SAME(PM_ACCESSED_BY_MAX, PM_ACCESSORS_MAX);
SAME(PM_RANGE_PREFERRED, PM_RUN_PREFERRED);
SAME(PM_RANGE_ACCESSED_BY, PM_RUN_ACCESSED_BY);
SAME(PM_RANGE_READ_MOSTLY, PM_RUN_READ_MOSTLY);
SAME(PM_RANGE_IN_FLIGHT, PM_RUN_IN_FLIGHT);
SAME(PM_RANGE_HOST_COPY, PM_RUN_HOST_COPY);

/* pm_migrate_batch sends one MIGRATE request. */
static_assert(PM_MIGRATE_BATCH_MAX <= PM_MIGRATE_MAX_RANGES, "a batch fits one request");
static_assert(PM_MIGRATE_BATCH_FDS <= PM_MAX_FDS, "a batch's fds fit one message");
