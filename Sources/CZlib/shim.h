#ifndef FLEET_TELEMETRY_CZLIB_SHIM_H
#define FLEET_TELEMETRY_CZLIB_SHIM_H
#include <zlib.h>
#endif
