#ifndef FLEET_TELEMETRY_CSQLITE_SHIM_H
#define FLEET_TELEMETRY_CSQLITE_SHIM_H
#include <sqlite3.h>
#endif
